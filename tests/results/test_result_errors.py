"""Using a job that cannot be used yet, and launch options that would be ignored: typed errors with a way out,
through the CLI and the Python API (no training here)."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vibeml.cli.main import app
from vibeml.client import VibeML
from vibeml.exceptions import ConfigurationError, CredentialError, ModelNotFoundError, ValidationError
from vibeml.models import JobRecord, JobStatus, TrainingRequest
from vibeml.settings import Settings

runner = CliRunner()


@pytest.fixture
def demo_home(vibeml_env: Path, demo_assets_dir: Path) -> Path:
    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    return vibeml_env


def _record(svc: VibeML, job_id: str, status: JobStatus, output_dir: str | None) -> JobRecord:
    now = datetime.now(timezone.utc)
    record = JobRecord(
        job_id=job_id,
        status=status,
        backend="local",
        request=TrainingRequest(model="acme/base", dataset="acme/data"),
        created_at=now,
        updated_at=now,
        finished_at=now if status.is_terminal else None,
        output_dir=output_dir,
        error="out of memory" if status is JobStatus.FAILED else None,
    )
    svc.store.create(record)
    return record


@pytest.mark.parametrize(
    ("status", "words"),
    [(JobStatus.PENDING, "vibeml status vml-00000001"), (JobStatus.FAILED, "out of memory")],
)
def test_a_job_that_did_not_complete_cannot_answer(vibeml_env: Path, status: JobStatus, words: str) -> None:
    svc = VibeML(Settings.from_env())
    _record(svc, "vml-00000001", status, None)
    for call in (
        lambda: svc.generate("vml-00000001", "hi"),
        lambda: svc.open_chat("vml-00000001"),
        lambda: svc.export("vml-00000001"),
        lambda: svc.push("vml-00000001", "alice/x"),
    ):
        with pytest.raises(ConfigurationError, match="not completed") as info:
            call()
        assert words in (info.value.message + (info.value.recovery_suggestion or ""))
    res = runner.invoke(app, ["generate", "vml-00000001", "--prompt", "hi", "--json"])
    assert res.exit_code == ConfigurationError.exit_code
    error = json.loads(res.stdout)
    assert "not completed" in error["message"] and error["recovery_suggestion"]
    with pytest.raises(ConfigurationError, match="not completed"):
        asyncio.run(__import__("vibeml").generate("vml-00000001", "hi"))


def test_a_completed_job_whose_adapter_is_gone(vibeml_env: Path, tmp_path: Path) -> None:
    svc = VibeML(Settings.from_env())
    _record(svc, "vml-00000002", JobStatus.COMPLETED, str(tmp_path / "moved-away"))
    with pytest.raises(ModelNotFoundError, match="holds no adapter") as info:
        svc.generate("vml-00000002", "hi")
    assert info.value.recovery_suggestion
    res = runner.invoke(app, ["chat", "vml-00000002"], input="hello\n")
    assert res.exit_code == ModelNotFoundError.exit_code and "Traceback" not in res.output


def test_a_full_fine_tune_has_nothing_to_merge(vibeml_env: Path, tmp_path: Path) -> None:
    svc = VibeML(Settings.from_env())
    out = tmp_path / "full"
    out.mkdir()
    (out / "config.json").write_text("{}")
    now = datetime.now(timezone.utc)
    svc.store.create(
        JobRecord(
            job_id="vml-00000003",
            status=JobStatus.COMPLETED,
            backend="local",
            request=TrainingRequest(model="acme/base", dataset="acme/data", workflow="full"),
            created_at=now,
            updated_at=now,
            output_dir=str(out),
        )
    )
    res = runner.invoke(app, ["export", "vml-00000003", "--merged", "--json"])
    assert res.exit_code == ConfigurationError.exit_code
    assert "already a whole model" in json.loads(res.stdout)["message"]
    res = runner.invoke(app, ["export", "vml-00000003", "--json"])  # without --merged: says what export does
    assert res.exit_code == ConfigurationError.exit_code and "merged" in json.loads(res.stdout)["message"]


def test_bad_generation_arguments(vibeml_env: Path) -> None:
    svc = VibeML(Settings.from_env())
    _record(svc, "vml-00000004", JobStatus.PENDING, None)
    with pytest.raises(ValidationError, match="prompt"):
        svc.generate("vml-00000004", "   ")
    with pytest.raises(ValidationError, match="max_new_tokens"):
        svc.generate("vml-00000004", "hi", max_new_tokens=0)
    with pytest.raises(ValidationError, match="repo id"):
        svc.push("vml-00000004", "no-namespace")


# ----------------------------------------------------------------- options a launch would silently ignore


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workflow", "qlora", "--save-merged"], "vibeml export JOB --merged"),
        (["--workflow", "full", "--save-merged"], "already"),
        (["--workflow", "full", "--lora-r", "8"], "lora_r"),
        (["--private"], "--push-to-hub"),
        (["--push-to-hub", "not a repo"], "push_to_hub"),
    ],
)
def test_launch_refuses_options_it_would_ignore(demo_home: Path, args: list[str], words: str) -> None:
    res = runner.invoke(app, ["launch", "--demo", *args, "--dry-run", "--json"])
    assert res.exit_code == ConfigurationError.exit_code, res.output
    error = json.loads(res.stdout)
    assert words in error["message"] + error.get("recovery_suggestion", ""), error
    assert json.loads(runner.invoke(app, ["jobs", "--json"]).stdout) == []


def test_push_to_hub_without_a_token_is_refused_before_the_job(demo_home: Path) -> None:
    res = runner.invoke(app, ["launch", "--demo", "--push-to-hub", "alice/demo", "--json"])
    assert res.exit_code == CredentialError.exit_code, res.output
    assert "set-credential huggingface token" in json.loads(res.stdout)["recovery_suggestion"]
    assert json.loads(runner.invoke(app, ["jobs", "--json"]).stdout) == []


def test_a_script_refuses_what_it_would_ignore(vibeml_env: Path) -> None:
    from vibeml.workflows.script import ScriptGenerator

    with pytest.raises(ConfigurationError, match="save-merged"):
        ScriptGenerator().build_config("qlora", "acme/base", "acme/data", save_merged=True)
