"""`vibeml launch --gpu-count 2` on this machine, through the real CLI: two trainer processes (CPU processes
standing in for GPUs, ``VIBEML_CPU_PROCESSES=2``, gloo) train the demo under torchrun.

The requested effective batch is split over the processes (the demo's 16 sequences per step: 8 per
process), the trainer's start event and ``vibeml status --json`` say 2 processes and the strategy, and the
adapter it delivers loads in one process. A batch that cannot be split evenly is refused before anything
starts, with a typed error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vibeml.trainer.events import StartEvent, StepEvent, read_events

VIBEML = [sys.executable, "-m", "vibeml"]


@pytest.fixture
def demo_home(vibeml_env: Path, demo_assets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shutil

    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    monkeypatch.setenv("VIBEML_CPU_PROCESSES", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CPU processes, even on a machine with GPUs
    return vibeml_env


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    return subprocess.run([*VIBEML, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _last_json(out: str) -> dict[str, Any]:
    docs, decoder, i = [], json.JSONDecoder(), out.find("{")
    while i >= 0:  # --follow --json: a document per progress change, then the final record
        doc, end = decoder.raw_decode(out, i)
        docs.append(doc)
        i = out.find("{", end)
    assert docs, out[-2000:]
    return docs[-1]


@pytest.mark.slow
@pytest.mark.needs_train
@pytest.mark.timeout(900)
def test_launch_gpu_count_2_trains_the_demo_with_two_ddp_processes(demo_home: Path) -> None:
    res = _cli("launch", "--demo", "--gpu-count", "2", "--strategy", "ddp", "--max-steps", "6", "--follow", "--json")
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    final = _last_json(res.stdout)
    assert final["status"] == "completed", final.get("error")
    job_id, job_dir = final["job_id"], Path(final["handle"]["job_dir"])

    status = _cli("status", job_id, "--json")
    assert status.returncode == 0, status.stderr
    p = json.loads(status.stdout)["progress"]
    assert (p["world_size"], p["num_nodes"], p["strategy"]) == (2, 1, "ddp")
    assert p["global_batch_size"] == 16 and p["step"] == 6  # the demo's 16 sequences a step, as with one process

    events = list(read_events(job_dir / "events.jsonl"))
    [start] = [e for e in events if isinstance(e, StartEvent)]
    assert (start.world_size, start.strategy, start.device) == (2, "ddp", "cpu")
    assert (start.batch_size, start.gradient_accumulation_steps) == (8, 1)  # 8 × 1 × 2 processes = 16
    assert [e.step for e in events if isinstance(e, StepEvent)] == list(range(1, 7))  # rank 0 alone writes
    log = (job_dir / "train.log").read_text(errors="replace")
    assert "--nproc_per_node=2" in final["handle"]["data"]["argv"]  # torchrun, one process per "GPU"
    assert log.count("[vibeml] done:") == 1, log[-2000:]

    from peft import AutoPeftModelForCausalLM

    out = Path(final["output_dir"])
    assert not list(out.rglob("*.distcp"))
    model = AutoPeftModelForCausalLM.from_pretrained(str(out))  # one process, no process group
    assert type(model).__name__ == "PeftModelForCausalLM"


@pytest.mark.needs_train  # the demo's assets are built with transformers
def test_a_batch_that_does_not_split_over_the_processes_is_refused_before_anything_starts(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIBEML_CPU_PROCESSES", "3")
    res = _cli("launch", "--demo", "--gpu-count", "3", "--json", timeout=300)
    assert res.returncode != 0
    err = json.loads(res.stdout or res.stderr)
    text = json.dumps(err)
    assert "does not split evenly over 3 processes" in text, text
    assert "--effective-batch 15 or 18" in text
    jobs = _cli("jobs", "--json")
    assert json.loads(jobs.stdout) == []  # nothing was started
