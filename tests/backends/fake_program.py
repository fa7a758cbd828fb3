"""A controllable stand-in for the trainer, to test process management (not training).

Behaviour from VIBEML_TEST_MODE: complete | graceful (waits; on SIGTERM writes `stopped`) | stubborn
(ignores SIGTERM) | crash (exits 3 with no event) | error (writes an `error` event). It writes the
trainer's typed events, and the SHA-256 of the HF_TOKEN it got to ``hf_token_sha256`` beside the event
file (tests check the token arrived, never print it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time
from pathlib import Path

from vibeml.trainer.config import load_config
from vibeml.trainer.events import DoneEvent, ErrorEvent, EventWriter, StartEvent, StepEvent, StoppedEvent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    cfg = load_config(parser.parse_args().config)
    ev = EventWriter(cfg.events_path)
    mode = os.environ.get("VIBEML_TEST_MODE", "complete")
    stop = {"flag": False}
    # Handlers go in before `start` is announced: a stop that follows `start` must find them.
    if mode == "graceful":
        signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    elif mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    token = os.environ.get("HF_TOKEN")
    digest = hashlib.sha256(token.encode()).hexdigest() if token else ""
    Path(cfg.events_path).with_name("hf_token_sha256").write_text(digest, encoding="utf-8")
    ev.emit(StartEvent(model=cfg.model, dataset=cfg.dataset, method=cfg.method, device="cpu", max_steps=5))
    print("started", mode, flush=True)
    if mode == "complete":
        for step in range(1, 6):
            ev.emit(StepEvent(step=step, max_steps=5, loss=5.0 - step))
            print(f"step {step}", flush=True)
            time.sleep(0.05)
        os.makedirs(cfg.output_dir, exist_ok=True)
        open(os.path.join(cfg.output_dir, "adapter_model.safetensors"), "w").close()
        ev.emit(DoneEvent(output_dir=cfg.output_dir, step=5, final_loss=0.0, first_loss=4.0))
        return 0
    if mode == "crash":
        print("boom", file=sys.stderr, flush=True)
        return 3
    if mode == "error":
        ev.emit(ErrorEvent(message="dataset has no rows", error_type="DatasetError"))
        return 1
    ev.emit(StepEvent(step=1, max_steps=5, loss=4.0))
    deadline = time.time() + 60
    while not stop["flag"] and time.time() < deadline:
        time.sleep(0.05)
    ev.emit(StoppedEvent(step=1, checkpoint="ckpt-1", reason="signal"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
