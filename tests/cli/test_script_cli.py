"""`vibeml script` and `vibeml validate`, through a local Typer app with the fragments registered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vibeml.cli import script as script_cli
from vibeml.cli import validate as validate_cli
from vibeml.cli._output import parse_column_mapping
from vibeml.exceptions import ValidationError
from vibeml.workflows.script import decode_script_config

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def main() -> None:
        """test app"""

    script_cli.register(a)
    validate_cli.register(a)
    return a


def test_script_writes_a_runnable_file(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "train.py"
    result = runner.invoke(
        app,
        [
            "script",
            "--workflow",
            "qlora",
            "--model",
            "Qwen/Qwen2.5-0.5B",
            "--dataset",
            "data.jsonl",
            "--max-steps",
            "7",
            "--lora-r",
            "4",
            "--target-modules",
            "q_proj,v_proj",
            "--sample-prompt",
            "$(id)",
            "--sample-prompt",
            "'''",
            "--column-mapping",
            "q=instruction,a=output",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(out)
    cfg = decode_script_config(out.read_text())
    assert cfg["method"] == "qlora" and cfg["hyperparameters"]["max_steps"] == 7
    assert cfg["hyperparameters"]["lora_target_modules"] == ["q_proj", "v_proj"]
    assert cfg["sample_prompts"] == ["$(id)", "'''"] and cfg["column_mapping"] == {"q": "instruction", "a": "output"}
    shown = subprocess.run([sys.executable, str(out), "--print-config"], capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout) == cfg
    again = runner.invoke(app, ["script", "-m", "m/x", "-d", "d.jsonl", "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output


def test_script_to_stdout_and_errors(app: typer.Typer) -> None:
    result = runner.invoke(app, ["script", "-m", "m/x", "-d", "d.jsonl", "-w", "unsloth", "-o", "-"])
    assert result.exit_code == 0 and result.stdout.startswith("#!/usr/bin/env python3")
    assert decode_script_config(result.stdout)["engine"] == "unsloth"
    bad = runner.invoke(app, ["script", "-m", "m/x", "-d", "d.jsonl", "-w", "nope"])
    assert bad.exit_code == 2 and "unknown workflow" in bad.output and "trl-lora" in bad.output
    rate = runner.invoke(app, ["script", "-m", "m/x", "-d", "d.jsonl", "--lr", "5"])
    assert rate.exit_code == 2 and "learning_rate" in rate.output


def test_column_mapping_parser() -> None:
    assert parse_column_mapping("a=b, c = d") == {"a": "b", "c": "d"}
    assert parse_column_mapping(None) is None
    with pytest.raises(ValidationError):
        parse_column_mapping("a")


@pytest.mark.needs_train
def test_validate_dataset_and_model(app: typer.Typer, demo_assets_dir: Path, tmp_path: Path) -> None:
    data = str(demo_assets_dir / "demo_dataset.jsonl")
    result = runner.invoke(app, ["validate", "dataset", data, "--json", "--max-seq-length", "16"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "alpaca" and report["num_rows"] > 100
    assert report["token_stats"]["method"] == "estimate" and report["stats"]["rows"] == report["num_rows"]
    table = runner.invoke(app, ["validate", "dataset", data])
    assert table.exit_code == 0 and "alpaca" in table.output and "characters / 4" in table.output
    model = runner.invoke(app, ["validate", "model", str(demo_assets_dir / "tiny-llama"), "--json"])
    assert model.exit_code == 0 and json.loads(model.stdout)["architecture"] == "LlamaForCausalLM"
    assert "LlamaForCausalLM" in runner.invoke(app, ["validate", "model", str(demo_assets_dir / "tiny-llama")]).output


def test_validate_errors_explain_what_to_do(app: typer.Typer, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    result = runner.invoke(app, ["validate", "dataset", str(qa), "--json"])
    assert result.exit_code == 3
    err = json.loads(result.stdout)
    assert err["error"] == "DatasetError" and err["context"]["columns_found"] == ["answer", "question"]
    mapped = runner.invoke(
        app, ["validate", "dataset", str(qa), "--column-mapping", "question=instruction,answer=output", "--json"]
    )
    assert mapped.exit_code == 0 and json.loads(mapped.stdout)["format"] == "alpaca"
    offline = runner.invoke(app, ["validate", "model", "acme/some-model"])
    assert offline.exit_code == 3 and "HF_HUB_OFFLINE" in offline.output


def test_cli_modules_import_no_torch() -> None:
    code = (
        "import sys, vibeml.cli.script, vibeml.cli.validate; "
        "print(any(m in sys.modules for m in ('torch', 'transformers', 'trl', 'datasets')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
