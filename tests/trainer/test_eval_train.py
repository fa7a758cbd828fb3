"""Evaluation in real (tiny, CPU) runs: eval loss every N steps and at the end, the best checkpoint kept,
and what status, the summary and the plot show of it. Through the Python API and the CLI."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibeml.cli.main import app
from vibeml.client import VibeML
from vibeml.settings import Settings
from vibeml.trainer.events import DoneEvent, EvalEvent, read_events

pytestmark = [pytest.mark.needs_train, pytest.mark.slow]

SMALL = {"max_seq_length": 64, "batch_size": 4, "learning_rate": 3e-3, "lora_r": 8, "warmup_ratio": 0.0}


def _wait(svc: VibeML, job_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = svc.get_status(job_id)
        if record.status.is_terminal:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{job_id} did not finish in {timeout}s")


def _adapter(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_eval_split_keep_best_through_the_python_api(
    vibeml_env: Path, tiny_model_dir: Path, dataset_file: Callable[..., Path]
) -> None:
    svc = VibeML(Settings.from_env())
    data = dataset_file("alpaca", 24)
    request = svc.request_from(
        str(tiny_model_dir), str(data), eval_split=0.25, max_steps=4, eval_steps=2, keep_best=True, **SMALL
    )
    record = _wait(svc, svc.launch(request).job_id)
    assert record.status.value == "completed", record.error
    events = list(read_events(svc.job_dir(record.job_id) / "events.jsonl"))
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert [e.step for e in evals] == [2, 4] and all(e.num_examples == 6 for e in evals)
    for e in evals:
        assert e.loss is not None and math.isfinite(e.loss) and e.perplexity == pytest.approx(math.exp(e.loss))
    done = next(e for e in events if isinstance(e, DoneEvent))
    best = min(evals, key=lambda e: e.loss or math.inf)
    assert done.best_checkpoint is not None and done.best_checkpoint.endswith(f"checkpoint-{best.step}")
    assert done.final_eval_loss == pytest.approx(evals[-1].loss) and done.best_eval_loss == pytest.approx(best.loss)
    # the delivered adapter is the best checkpoint's
    delivered, kept = _adapter(Path(done.output_dir)), _adapter(Path(done.best_checkpoint))
    assert delivered.keys() == kept.keys() and all((delivered[k] == kept[k]).all() for k in kept)
    p = record.progress
    assert p.eval_loss == pytest.approx(evals[-1].loss) and p.best_checkpoint == done.best_checkpoint
    start = next(e for e in events if e.event == "start")
    assert start.num_examples == 18  # 24 rows less the 6 held out


def test_eval_dataset_through_the_cli_shows_in_status_summary_and_plot(
    vibeml_env: Path, tiny_model_dir: Path, dataset_file: Callable[..., Path], write_jsonl: Any, format_rows: Any
) -> None:
    runner = CliRunner()
    data = dataset_file("alpaca", 16)
    held = write_jsonl(data.parent / "held.jsonl", format_rows("alpaca", 6))
    args = ["launch", "--model", str(tiny_model_dir), "--dataset", str(data), "--eval-dataset", str(held)]
    args += ["--max-steps", "3", "--max-seq-length", "64", "--batch-size", "4", "--lora-r", "8", "--follow"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Eval loss:" in res.stdout and "ppl" in res.stdout and "Curves:" in res.stdout
    jobs = json.loads(runner.invoke(app, ["jobs", "--json"]).stdout)
    job_id = jobs[0]["job_id"]
    picture = vibeml_env / "jobs" / job_id / "curves.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert jobs[0]["progress"]["eval_loss"] is not None and jobs[0]["progress"]["eval_step"] == 3
    status = runner.invoke(app, ["status", job_id])
    assert "eval loss" in status.stdout and "loss curve" in status.stdout
