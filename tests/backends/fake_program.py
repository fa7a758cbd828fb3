"""A controllable stand-in for the trainer, to test process management (not training).

Behaviour from VIBEML_TEST_MODE: complete | graceful (waits; on SIGTERM writes `stopped`) | stubborn
(ignores SIGTERM) | crash (exits 3 with no event) | error (writes an `error` event).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time

from vibeml.trainer.config import load_config
from vibeml.trainer.events import EventWriter


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
    token = os.environ.get("HF_TOKEN")  # reported as a digest: tests check the token arrived, never print it
    ev.emit("start", max_steps=5, hf_token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else None)
    print("started", mode, flush=True)
    if mode == "complete":
        for step in range(1, 6):
            ev.emit("step", step=step, max_steps=5, loss=5.0 - step)
            print(f"step {step}", flush=True)
            time.sleep(0.05)
        os.makedirs(cfg.output_dir, exist_ok=True)
        open(os.path.join(cfg.output_dir, "adapter_model.safetensors"), "w").close()
        ev.emit("done", output_dir=cfg.output_dir, step=5, final_loss=0.0, first_loss=4.0)
        return 0
    if mode == "crash":
        print("boom", file=sys.stderr, flush=True)
        return 3
    if mode == "error":
        ev.emit("error", message="dataset has no rows", error_type="DatasetError")
        return 1
    ev.emit("step", step=1, max_steps=5, loss=4.0)
    deadline = time.time() + 60
    while not stop["flag"] and time.time() < deadline:
        time.sleep(0.05)
    ev.emit("stopped", step=1, checkpoint="ckpt-1", reason="signal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
