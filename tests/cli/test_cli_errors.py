"""Bad input through the real CLI: a clear message, a recovery suggestion, an exit code — no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibeml.cli.main import app

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["launch"], 2, "give --model and --dataset"),
        (["launch", "--model", "m/x", "--dataset", "./missing.jsonl"], 3, "dataset file not found"),
        (["launch", "--model", "./nope-model", "--dataset", "d/x"], 3, "model directory not found"),
        (["launch", "--model", "m/x", "--dataset", "d/x", "--lr", "-1"], 2, "learning_rate"),
        (["launch", "--model", "m/x", "--dataset", "d/x", "--max-steps", "5", "--epochs", "1"], 2, "not both"),
        (["launch", "--model", "m/x", "--dataset", "d/x", "--backend", "moon"], 2, "unknown backend"),
        (["launch", "--model", "m/x", "--dataset", "d/x", "--workflow", "magic"], 2, "unknown workflow"),
        (["launch", "--model", "m/x", "--dataset", "d/x", "--spot"], 2, "does not support spot"),
        (["launch", "--model", "m x", "--dataset", "d/x"], 3, "neither a local directory nor a hub id"),
        (["status", "vml-doesnotexist"], 4, "no job"),
        (["stop", "vml-doesnotexist"], 4, "no job"),
        (["logs", "vml-doesnotexist"], 4, "no job"),
    ],
)
def test_errors_are_clear(args: list[str], code: int, needle: str) -> None:
    exit_code, out, err = _invoke(*args)
    assert exit_code == code, (out, err)
    assert needle in err
    assert "What to do:" in err
    assert "Traceback" not in out + err


def test_json_errors_are_json() -> None:
    exit_code, out, _ = _invoke("status", "vml-nothing", "--json")
    assert exit_code == 4
    payload = json.loads(out)
    assert payload["error"] == "JobNotFoundError"
    assert payload["recovery_suggestion"]


def test_jobs_empty_and_json(vibeml_env: Path) -> None:
    code, out, _ = _invoke("jobs")
    assert code == 0 and "No jobs yet" in out
    code, out, _ = _invoke("jobs", "--json")
    assert code == 0 and json.loads(out) == []


def test_version_and_workflows() -> None:
    code, out, _ = _invoke("--version")
    assert code == 0 and out.startswith("vibeml ")
    code, out, _ = _invoke("workflows", "--json")
    assert {w["name"] for w in json.loads(out)} >= {"trl-lora", "full"}


def test_budget_is_checked_before_anything_starts(tmp_path: Path, vibeml_env: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hi"}\n')
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "vocab_size": 32})
    )  # fmt: skip
    # Local runs cost nothing, so any positive budget holds and the job is created.
    code, out, err = _invoke("launch", "--model", str(model), "--dataset", str(data), "--max-cost", "0.01", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["estimate"]["expected_cost"] == 0.0
    assert job["request"]["dataset"] == str(data.resolve())
    code, out, _ = _invoke("stop", job["job_id"], "--grace", "5", "--json")
    assert code == 0
    assert json.loads(out)["status"] in ("stopped", "failed")
