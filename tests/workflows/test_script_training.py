"""Generated scripts TRAIN the tiny demo model on CPU, as real processes, without VibeML importable.

trl-lora and full always; qlora where bitsandbytes is installed and can quantise on the CPU. The runs
start together (one torch thread each) so the module stays quick on 2 cores. Output paths and prompts
hold injection payloads: they must arrive as the same strings and never run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobStatus
from vibeml.trainer.events import (
    CheckpointEvent,
    DoneEvent,
    SampleEvent,
    StepEvent,
    parse_event_lines,
    read_events,
)
from vibeml.workflows.script import ScriptGenerator

pytestmark = [pytest.mark.needs_train, pytest.mark.slow]

#: sys.modules["vibeml"] = None makes every `import vibeml...` fail: the script must not need VibeML.
WITHOUT_VIBEML = (
    "import runpy, sys; sys.modules['vibeml'] = None; script = sys.argv.pop(1); "
    "runpy.run_path(script, run_name='__main__')"
)
PROMPTS = ["What is 2 + 3?", "'''); __import__('os').system('touch CANARY'); ('''", "$(touch CANARY) `id`"]


def _bnb_cpu_reason() -> str | None:
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (QLoRA on a CPU needs bitsandbytes >= 0.48)"
    probe = (
        "import torch, bitsandbytes.functional as F; "
        "F.quantize_4bit(torch.zeros(64, dtype=torch.float32), quant_type='nf4')"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return None if out.returncode == 0 else f"this bitsandbytes cannot quantise on the CPU: {out.stderr[-300:]}"


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIBEML_", "HF_", "HUGGING_FACE"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp / "hf-home"),
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, demo_assets_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("script-runs")
    canary = root / "CANARY"
    workflows = ["trl-lora", "full"]
    skip = _bnb_cpu_reason()
    if skip is None:
        workflows.append("qlora")
    started: dict[str, Any] = {}
    for wf in workflows:
        work = root / wf
        work.mkdir()
        out_dir = work / "out $(touch CANARY) 'q' \"d\"".replace("CANARY", str(canary))
        hp = {
            "max_steps": 8,
            "learning_rate": 4e-3 if wf != "full" else 1e-3,
            "batch_size": 8,
            "max_seq_length": 64,
            "warmup_ratio": 0.0,
            "save_steps": 4,
            "save_total_limit": 1,
            "logging_steps": 1,
        }
        if wf != "full":  # the full workflow refuses LoRA settings
            hp.update(lora_r=8, lora_alpha=16, lora_dropout=0.0)
        script = ScriptGenerator().generate_script(
            wf,
            str(demo_assets_dir / "tiny-llama"),
            str(demo_assets_dir / "demo_dataset.jsonl"),
            output_dir=str(out_dir),
            sample_prompts=[p.replace("CANARY", str(canary)) for p in PROMPTS],
            torch_threads=1,
            device="cpu",
            **hp,
        )
        path = work / "train.py"
        path.write_text(script, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-c", WITHOUT_VIBEML, str(path)],
            cwd=work,
            env=_env(work),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[wf] = (proc, out_dir)
    results: dict[str, Any] = {"canary": canary, "qlora_skip": skip}
    for wf, (proc, out_dir) in started.items():
        try:
            stdout, stderr = proc.communicate(timeout=280)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        results[wf] = {"rc": proc.returncode, "stdout": stdout, "stderr": stderr, "out": out_dir}
    return results


@pytest.mark.parametrize("workflow", ["trl-lora", "full", "qlora"])
def test_script_trains_on_cpu(runs: dict[str, Any], workflow: str) -> None:
    """The script reports in VibeML's trainer events: its stdout and its events file read with VibeML's own
    reader, and fold into a completed job's progress."""
    if workflow == "qlora" and runs["qlora_skip"]:
        pytest.skip(runs["qlora_skip"])
    run = runs[workflow]
    assert run["rc"] == 0, f"rc={run['rc']}\nstdout={run['stdout'][-2000:]}\nstderr={run['stderr'][-3000:]}"
    events = list(parse_event_lines(run["stdout"].splitlines()))
    assert events == list(read_events(run["out"] / "events.jsonl"))  # the file holds what was echoed
    assert [e.event for e in events if not isinstance(e, (StepEvent, CheckpointEvent))] == [
        "start",
        *["sample"] * len(PROMPTS),
        "done",
    ]
    assert [e.step for e in events if isinstance(e, StepEvent)] == list(range(1, 9))
    assert [e.step for e in events if isinstance(e, CheckpointEvent)] == [4, 8]
    (done,) = [e for e in events if isinstance(e, DoneEvent)]
    assert done.step == 8 and done.output_dir == str(run["out"])
    assert done.final_loss is not None and done.first_loss is not None and done.final_loss < done.first_loss
    progress = progress_from_events(events, alive=False)
    assert progress.status is JobStatus.COMPLETED and progress.step == 8 and progress.loss == done.final_loss
    weights = "model.safetensors" if workflow == "full" else "adapter_model.safetensors"
    assert (run["out"] / weights).is_file()
    canary = runs["canary"]
    prompts = [p.replace("CANARY", str(canary)) for p in PROMPTS]
    samples = [e for e in events if isinstance(e, SampleEvent)]
    assert [s.prompt for s in samples] == prompts and {s.phase for s in samples} == {"after"}  # the same strings
    assert not canary.exists()
