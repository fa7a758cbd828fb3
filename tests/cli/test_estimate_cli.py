"""`vibeml estimate`, `plan` and `gpus`, through a local Typer app with the fragment registered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from vibeml.cli.estimate import register
from vibeml.exceptions import BudgetExceededError, ConfigurationError, ModelNotFoundError


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


runner = CliRunner()


def run_json(app: typer.Typer, *args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_estimate_json_has_the_required_fields(app: typer.Typer) -> None:
    data = run_json(
        app,
        "estimate",
        "--model",
        "meta-llama/Llama-3.2-1B",
        "--method",
        "lora",
        "--batch-size",
        "8",
        "--max-seq-length",
        "2048",
        "--gradient-checkpointing",
        "--lora-r",
        "16",
        "--gpu",
        "H100",
        "--lora-dropout",
        "0",
        "--max-steps",
        "100",
    )
    for key in (
        "total_gib",
        "fits",
        "breakdown",
        "tokens_per_s",
        "hours",
        "train_hours",
        "setup_hours",
        "expected_cost",
        "min_cost",
        "max_cost",
        "hourly_rate",
        "steps",
    ):
        assert key in data
    assert data["fits"] is True and data["total_gib"] == pytest.approx(7.44, rel=0.10)  # measured 7.44
    assert data["steps"] == 100 and data["loss"] == "fused"
    assert sum(data["breakdown"].values()) == pytest.approx(data["total_gib"], abs=0.01)
    assert data["min_cost"] <= data["expected_cost"] <= data["max_cost"]


def test_estimate_standard_loss_and_not_fitting(app: typer.Typer) -> None:
    std = run_json(
        app,
        "estimate",
        "-m",
        "meta-llama/Llama-3.2-1B",
        "--batch-size",
        "8",
        "--max-seq-length",
        "2048",
        "--loss",
        "standard",
        "--lora-dropout",
        "0",
        "--gpu",
        "H100",
    )
    assert std["total_gib"] == pytest.approx(41.4, rel=0.10)  # measured 41.44
    assert any("max_steps=1000" in a for a in std["assumptions"])
    big = run_json(
        app,
        "estimate",
        "-m",
        "mistralai/Mistral-7B-v0.1",
        "--batch-size",
        "8",
        "--max-seq-length",
        "2048",
        "--no-gradient-checkpointing",
        "--loss",
        "standard",
        "--gpu",
        "h100",
    )
    assert big["fits"] is False and big["headroom_gib"] < 0


def test_estimate_cloud_spot_count_and_local(app: typer.Typer) -> None:
    data = run_json(
        app,
        "estimate",
        "-m",
        "Qwen/Qwen2.5-7B",
        "--gpu",
        "A100-80GB",
        "--gpu-count",
        "2",
        "--cloud",
        "gcp",
        "--spot",
        "--dataset-rows",
        "10000",
        "--mean-tokens",
        "300",
        "--epochs",
        "2",
    )
    assert data["cloud"] == "gcp" and data["spot"] and data["gpu_count"] == 2
    assert data["hourly_rate"] == pytest.approx(2 * data["usd_per_gpu_hour"])
    local = run_json(app, "estimate", "-m", "Qwen/Qwen2.5-0.5B", "--gpu", "RTX 4090", "--cloud", "local")
    assert local["expected_cost"] == 0


def test_estimate_rich_output(app: typer.Typer) -> None:
    result = runner.invoke(app, ["estimate", "-m", "Qwen/Qwen2.5-0.5B", "--gpu", "T4"])
    assert result.exit_code == 0 and "fits" in result.stdout and "tokens/s" in result.stdout


def test_errors_are_clear_with_exit_codes(app: typer.Typer) -> None:
    cases = [
        (["estimate", "-m", "Qwen/Qwen2.5-0.5B", "--gpu", "TPU-v5", "--json"], ConfigurationError),
        (["estimate", "-m", "acme/unknown-thing", "--json"], ModelNotFoundError),
        (["plan", "-m", "Qwen/Qwen2.5-7B", "--max-steps", "5000", "--max-cost", "0.5", "--json"], BudgetExceededError),
    ]
    for args, exc_type in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == exc_type.exit_code, (args, result.stdout, result.stderr)
        payload = json.loads(result.stdout)
        assert payload["error"] == exc_type.__name__ and payload["recovery_suggestion"]
        assert "Traceback" not in result.stdout + result.stderr
    assert "cheapest_option" in payload["context"]


def test_plan_json_sorted_and_filtered(app: typer.Typer) -> None:
    data = run_json(
        app,
        "plan",
        "-m",
        "Qwen/Qwen2.5-7B",
        "--batch-size",
        "8",
        "--max-seq-length",
        "2048",
        "--max-steps",
        "2000",
        "--cloud",
        "vast",
        "--cloud",
        "runpod",
        "--no-spot",
        "--top",
        "5",
    )
    costs = [o["expected_cost"] for o in data["options"]]
    assert costs == sorted(costs) and len(costs) == 5 and data["total_options"] >= 5
    assert all(o["cloud"] in ("vast", "runpod") and not o["spot"] for o in data["options"])
    assert all(o["memory_gib"] <= o["capacity_gib"] for o in data["options"])
    assert any(r["reason"] == "does_not_fit" for r in data["rejected"])


def test_plan_table(app: typer.Typer) -> None:
    result = runner.invoke(app, ["plan", "-m", "Qwen/Qwen2.5-0.5B", "--max-steps", "200", "--top", "3"])
    assert result.exit_code == 0 and "cheapest total cost first" in result.stdout


def test_gpus(app: typer.Typer) -> None:
    data = run_json(app, "gpus")
    names = {g["gpu"] for g in data["gpus"]}
    assert {"H100", "A100-80GB", "RTX 4090", "T4"} <= names
    h100 = next(g for g in data["gpus"] if g["gpu"] == "H100")
    assert h100["on_demand"]["usd_per_gpu_hour"] > h100["spot"]["usd_per_gpu_hour"]
    assert runner.invoke(app, ["gpus"]).exit_code == 0


def test_estimate_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, typer\n"
        "from typer.testing import CliRunner\n"
        "from vibeml.cli.estimate import register\n"
        "app = typer.Typer(); register(app)\n"
        "r = CliRunner().invoke(app, ['estimate', '-m', 'Qwen/Qwen2.5-7B', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'sky', 'datasets', 'trl', 'peft') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
