"""`vibeml launch --dry-run`: the launch's own preparation, rendered; it fails where the launch fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibeml.cli.main import app
from vibeml.exceptions import ConfigurationError

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(12)), encoding="utf-8"
    )
    return str(path)


def test_dry_run_shows_the_prepared_launch_and_starts_nothing(vibeml_env: Path, data: str, tmp_path: Path) -> None:
    # Offline (conftest), a local run reads the model from the hub cache: put it there.
    snapshot = tmp_path / "hf-home" / "hub" / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "r1"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("r1")
    args = ["launch", "--model", "Qwen/Qwen2.5-0.5B", "--dataset", data, "--max-steps", "5", "--dry-run"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    preview = json.loads(res.stdout)
    assert preview["estimate"]["expected_cost"] == 0 and preview["plan"] is None and preview["choice"] is None
    assert preview["request"]["dataset"] == str(Path(data).resolve()) and preview["budget"]["warnings"] == []
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "Dry run" in table.stdout and "nothing was started" in table.stdout
    assert json.loads(runner.invoke(app, ["jobs", "--json"]).stdout) == []
    assert not (vibeml_env / "jobs").exists() or not any((vibeml_env / "jobs").iterdir())


def test_dry_run_and_launch_fail_alike_without_a_cap(
    vibeml_env: Path, data: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAST_API_KEY", "vk_test_never_used")
    monkeypatch.setenv("VIBEML_VAST_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail
    args = ["launch", "--backend", "vast", "--model", "Qwen/Qwen2.5-0.5B", "--dataset", data, "--max-steps", "5"]
    dry, real = runner.invoke(app, [*args, "--dry-run", "--json"]), runner.invoke(app, [*args, "--json"])
    assert dry.exit_code == real.exit_code == ConfigurationError.exit_code
    assert json.loads(dry.stdout) == json.loads(real.stdout)
    assert "give a budget cap" in json.loads(dry.stdout)["message"]
    assert json.loads(runner.invoke(app, ["jobs", "--json"]).stdout) == []
