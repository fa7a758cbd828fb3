"""DDP and FSDP on CPU: 2 trainer processes under torchrun (gloo) train the tiny demo model.

Each parallel run is killed (SIGKILL to torchrun) once a checkpoint is on disk, then started again: it resumes
from that checkpoint (FSDP's is sharded: one file per process) and finishes. The loss at every step matches a
single-process run at the same global batch (2 x 4 = 8 sequences) within ``LOSS_RTOL``; the final adapter is
written once, unsharded, loads in one process and matches the single-process adapter within ``WEIGHT_RTOL`` of
what training changed. Measured on CPU: the losses agree to 1e-5; the adapters differ by 3.2e-3 at most, 0.16% of
the learned update (Adam turns the tiny differences of micro-batches of 4 against one of 8 on a near-zero
gradient into a step of up to ~lr).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vibeml.launch import Rendezvous, trainer_command
from vibeml.trainer.events import CheckpointEvent, DoneEvent, StartEvent, StepEvent, read_events

pytestmark = [pytest.mark.slow, pytest.mark.needs_train, pytest.mark.timeout(1500)]

LOSS_RTOL = 1e-3
#: The adapters' difference relative to the size of the learned update (lora_B's norm).
WEIGHT_RTOL = 5e-2
#: Adam's step is at most a few learning rates per weight (|m/sqrt(v)| <= (1 - b1) / sqrt(1 - b2) ~ 3.2).
ADAM_NOISE_STEPS = 4
LEARNING_RATE = 3e-3  # the trainer tests' rate for the tiny model
STEPS = 6
SAVE_EVERY = 3


def _config(cli: Any, root: Path, name: str, tiny_model_dir: Path, data: Path, strategy: str, batch: int) -> Any:
    return cli.config(
        root / name,
        tiny_model_dir,
        data,
        strategy=strategy,
        hyperparameters={
            "max_steps": STEPS,
            "batch_size": batch,
            "save_steps": SAVE_EVERY,
            "seed": 3,
            "learning_rate": LEARNING_RATE,
        },
    )


def _start(workdir: Path, cfg: dict[str, Any], processes: int) -> subprocess.Popen[str]:
    from tests.trainer.conftest import _env

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "run.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return subprocess.Popen(
        trainer_command(sys.executable, path, Rendezvous(nproc_per_node=processes)),
        cwd=workdir,
        env=_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the run hung:\n{out[-4000:]}") from None
    assert proc.returncode == 0, out[-4000:]
    return out


def _workers_of(config_path: Path) -> list[int]:
    """Live processes whose command line names ``config_path`` (the trainer's workers and torchrun)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(config_path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _kill_after_checkpoint(workdir: Path, cfg: dict[str, Any]) -> int:
    """Start 2 processes, SIGKILL torchrun once a checkpoint exists; returns that checkpoint's step."""
    proc = _start(workdir, cfg, 2)
    events = Path(cfg["events_path"])
    deadline = time.monotonic() + 400
    step = None
    while time.monotonic() < deadline and proc.poll() is None:
        saved = [e.step for e in read_events(events) if isinstance(e, CheckpointEvent)]
        if saved:
            step = saved[0]
            break
        time.sleep(0.1)
    assert step is not None, f"no checkpoint before the run ended (rc={proc.poll()})"
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun only: its workers run in sessions of their own
    proc.communicate()
    gone = time.monotonic() + 30
    while _workers_of(workdir / "run.json") and time.monotonic() < gone:
        time.sleep(0.2)
    assert not _workers_of(workdir / "run.json"), "the workers outlived a killed torchrun"
    return step


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, cli: Any, format_rows: Any, write_jsonl: Any
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("parallel")
    data = write_jsonl(root / "alpaca.jsonl", format_rows("alpaca", 120))
    single_cfg = _config(cli, root, "single", tiny_model_dir, data, "single", 8)
    single = _start(root / "single", single_cfg, 1)
    out: dict[str, Any] = {"single": {"cfg": single_cfg}}
    for strategy in ("ddp", "fsdp"):
        cfg = _config(cli, root, strategy, tiny_model_dir, data, strategy, 4)
        killed_at = _kill_after_checkpoint(root / strategy, cfg)
        ckpt = Path(cfg["checkpoint_dir"])
        listing = sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*") if p.is_file())
        log = _finish(_start(root / strategy, cfg, 2))
        out[strategy] = {"cfg": cfg, "killed_at": killed_at, "listing": listing, "log": log}
    _finish(single)
    for entry in out.values():
        entry["events"] = list(read_events(entry["cfg"]["events_path"]))
    return out


def _losses(events: list[Any]) -> dict[int, list[float]]:
    by_step: dict[int, list[float]] = {}
    for e in events:
        if isinstance(e, StepEvent):
            by_step.setdefault(e.step, []).append(e.loss)
    return by_step


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_at_the_same_global_batch(runs: dict[str, Any], strategy: str) -> None:
    [reference] = [e for e in runs["single"]["events"] if isinstance(e, DoneEvent)]
    single = {step: losses[0] for step, losses in _losses(runs["single"]["events"]).items()}
    parallel = _losses(runs[strategy]["events"])
    assert set(parallel) == set(single) == set(range(1, STEPS + 1))
    for step, losses in parallel.items():  # steps after the checkpoint ran twice: before the kill and after
        for loss in losses:
            assert loss == pytest.approx(single[step], rel=LOSS_RTOL), (step, loss, single[step])
    assert reference.final_loss is not None and reference.final_loss < 0.8 * single[1]  # it learned


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_killed_run_resumes_from_its_checkpoint(runs: dict[str, Any], strategy: str) -> None:
    run = runs[strategy]
    starts = [e for e in run["events"] if isinstance(e, StartEvent)]
    assert len(starts) == 2 and starts[0].resumed_from is None
    # the start says how the job runs: what `vibeml status` shows (world size, strategy, the global batch)
    assert all((s.world_size, s.num_nodes, s.strategy, s.global_batch_size) == (2, 1, strategy, 8) for s in starts)
    [single] = [e for e in runs["single"]["events"] if isinstance(e, StartEvent)]
    assert (single.world_size, single.strategy, single.global_batch_size) == (1, "single", 8)
    assert starts[1].resumed_from is not None and Path(starts[1].resumed_from).name.startswith("checkpoint-")
    assert int(Path(starts[1].resumed_from).name.split("-")[1]) >= run["killed_at"]
    [done] = [e for e in run["events"] if isinstance(e, DoneEvent)]
    assert done.step == STEPS
    first = f"checkpoint-{run['killed_at']}"
    if strategy == "fsdp":  # one model shard and one optimizer shard per process
        for part in ("pytorch_model_fsdp_0", "optimizer_0"):
            assert {f"{first}/{part}/__0_0.distcp", f"{first}/{part}/__1_0.distcp"} <= set(run["listing"])
        assert f"{first}/adapter_model.safetensors" not in run["listing"]
    else:
        assert f"{first}/adapter_model.safetensors" in run["listing"]
    assert run["log"].count("[vibeml] done:") == 1  # only rank 0 speaks


def test_the_final_adapters_load_in_one_process_and_agree(runs: dict[str, Any]) -> None:
    from peft import AutoPeftModelForCausalLM
    from safetensors.torch import load_file

    ref = load_file(str(Path(runs["single"]["cfg"]["output_dir"]) / "adapter_model.safetensors"))
    for strategy in ("ddp", "fsdp"):
        out = Path(runs[strategy]["cfg"]["output_dir"])
        assert not list(out.rglob("*.distcp"))  # unsharded
        weights = load_file(str(out / "adapter_model.safetensors"))
        assert set(weights) == set(ref)
        # Adam divides each gradient by its own running size, so reduction-order noise on a weight whose gradient
        # is near zero moves it by up to ~lr a step: the element-wise gap is bounded by that, and the adapter as a
        # whole must match the single-process one relative to what training changed (lora_B starts at zero).
        worst = max(float((weights[k] - ref[k]).abs().max()) for k in ref)
        assert worst <= ADAM_NOISE_STEPS * STEPS * LEARNING_RATE, (strategy, worst)
        gap = sum(float((weights[k] - ref[k]).pow(2).sum()) for k in ref) ** 0.5
        learned = sum(float(ref[k].pow(2).sum()) for k in ref if "lora_B" in k) ** 0.5
        assert learned > 0 and gap <= WEIGHT_RTOL * learned, (strategy, gap, learned)
        model = AutoPeftModelForCausalLM.from_pretrained(str(out))
        assert type(model).__name__ == "PeftModelForCausalLM"
