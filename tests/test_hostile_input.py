"""Each reproduction from the hostile-input review, through the front end where it was found.

Every one must end as a typed error with a recovery suggestion (CLI: an exit code that is not 70, no
traceback; API: a ``VibeMLError``), never a hang, unbounded memory or a replaced device.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vibeml
from vibeml.cli.main import app
from vibeml.exceptions import ConfigurationError, DatasetError, JobNotFoundError, ValidationError
from vibeml.jobs.store import JobStore

runner = CliRunner()
POSIX = os.name == "posix"


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    assert result.exit_code != 70, out
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), out
    return result.exit_code, " ".join(out.split())  # rich wraps long lines


def _suggests(out: str) -> None:
    assert "What to do:" in out, out


# ---------------------------------------------------------------------------------------- datasets


def test_binary_bytes_in_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"text\n\xff\xfe\x00bin\x80\n")
    code, out = cli("validate", "dataset", str(path))
    assert code == 3 and "not UTF-8 text" in out
    _suggests(out)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_deeply_nested_json(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    depth = 100_000
    body = "[" * depth + "]" * depth
    path.write_text(body if suffix == ".json" else '{"text": ' + body + "}\n")
    code, out = cli("validate", "dataset", str(path))
    assert code == 3 and "nested more than" in out
    _suggests(out)


def test_moderately_nested_rows_within_the_limit_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "hi", "meta": ' + "[" * 40 + "]" * 40 + "}\n")
    code, out = cli("validate", "dataset", str(path))
    assert code == 0, out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.timeout(60)
def test_a_fifo_as_dataset_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    code, out = cli("validate", "dataset", str(fifo))  # would block for good if it were opened
    assert code == 3 and "named pipe" in out
    _suggests(out)
    code, out = cli("launch", "--model", "m/x", "--dataset", str(fifo), "--max-steps", "1")
    assert code == 3 and "named pipe" in out
    with pytest.raises(DatasetError, match="named pipe"):
        asyncio.run(vibeml.launch_training(model="m/x", dataset=str(fifo), max_steps=1))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.timeout(60)
def test_a_link_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "data.jsonl"
    link.symlink_to("/dev/zero")
    code, out = cli("validate", "dataset", str(link))
    assert code == 3 and "character device" in out
    _suggests(out)


# ------------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_mean_tokens_must_be_finite(value: str) -> None:
    code, out = cli("estimate", "--model", "Qwen/Qwen2.5-0.5B", "--mean-tokens", value, "--dataset-rows", "100")
    assert code == 2 and "finite" in out
    _suggests(out)
    code, out = cli("estimate", "--model", "Qwen/Qwen2.5-0.5B", "--mean-tokens", "nan", "--dataset-rows", "100")
    assert code == 2 and "--mean-tokens" in out  # typer's range check refuses nan first


@pytest.mark.parametrize("value", ["99999999999999999999999", "-1", "0"])
def test_jobs_limit_is_bounded(value: str) -> None:
    code, out = cli("jobs", "--limit", value)
    assert code == 2 and "limit must be a whole number from 1" in out
    _suggests(out)


def test_max_cost_inf_is_refused() -> None:
    code, out = cli("launch", "--model", "m/x", "--dataset", "d/x", "--max-steps", "5", "--max-cost", "inf")
    assert code == 2 and "max_cost" in out and "finite" in out


def test_sky_export_nodes_zero_is_refused() -> None:
    code, out = cli("sky", "export", "--model", "m/x", "--dataset", "d/x", "--max-steps", "5", "--nodes", "0")
    assert code == 2 and "--nodes" in out
    from vibeml.backends.skypilot.task import choice_from_flags

    with pytest.raises(ValidationError, match="nodes must be"):
        choice_from_flags("H100", num_nodes=0)


# ------------------------------------------------------------------------------------------ job ids


def test_a_huge_job_id_never_reaches_sql() -> None:
    code, out = cli("status", "a" * 100_000)
    assert code == 4 and "is not a job id" in out
    assert len(out) < 2_000  # the id is cut when shown
    _suggests(out)


def test_escape_sequences_are_not_echoed_raw() -> None:
    hostile = "\x1b[31mred\x1b]0;owned\x07\u202e"
    code, out = cli("status", hostile)
    assert code == 4
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b" in out  # shown escaped instead


# -------------------------------------------------------------------------------------- output paths


def test_sky_export_to_a_directory_or_a_new_folder(tmp_path: Path) -> None:
    pytest.importorskip("sky")
    code, out = cli("sky", "export", "--model", "m/x", "--dataset", "d/x", "--max-steps", "5", "-o", str(tmp_path))
    assert code == 2 and "is a directory" in out
    _suggests(out)
    target = tmp_path / "missing" / "parent" / "task.yaml"
    code, out = cli(
        "sky", "export", "--model", "Qwen/Qwen2.5-0.5B", "--dataset", "d/x", "--max-steps", "5", "-o", str(target)
    )
    assert code == 0, out
    assert "run:" in target.read_text()


def test_sky_export_template_like_cloud_is_refused() -> None:
    code, out = cli("sky", "export", "--model", "m/x", "--dataset", "d/x", "--max-steps", "5", "--cloud", "{{7*7}}")
    assert code == 2 and "cloud name" in out
    _suggests(out)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_script_never_replaces_a_device() -> None:
    before = os.stat("/dev/full")
    code, out = cli("script", "--model", "m/x", "--dataset", "d/x", "-o", "/dev/full", "--force")
    assert code == 2 and "character device" in out
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_script_to_a_directory_is_refused(tmp_path: Path) -> None:
    code, out = cli("script", "--model", "m/x", "--dataset", "d/x", "-o", str(tmp_path), "--force")
    assert code == 2 and "is a directory" in out


# ------------------------------------------------------------------------------------------------ mcp


@pytest.mark.parametrize("address", ["abc", "127.0.0.1:99999", "127.0.0.1:", "::::", "host name:80"])
def test_mcp_http_address_is_checked(address: str) -> None:
    code, out = cli("mcp", "--http", address)
    assert code == 2 and "HOST:PORT" in out
    _suggests(out)


def test_mcp_http_port_in_use_is_an_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = cli("mcp", "--http", f"127.0.0.1:{port}")
    assert code == 2 and "cannot serve MCP" in out


# ----------------------------------------------------------------------------------------- python api


def test_api_get_job_status_of_none() -> None:
    with pytest.raises(JobNotFoundError, match="not a job id") as info:
        asyncio.run(vibeml.get_job_status(None))  # type: ignore[arg-type]
    assert info.value.recovery_suggestion


@pytest.mark.parametrize("limit", ["abc", -1, 0, True, 10**30, 2.5])
def test_api_list_jobs_with_a_bad_limit(limit: object) -> None:
    with pytest.raises(ValidationError, match="limit must be"):
        asyncio.run(vibeml.list_jobs(limit=limit))  # type: ignore[arg-type]


def test_api_launch_with_settings_that_are_not_settings() -> None:
    with pytest.raises(ValidationError, match=r"settings must be a vibeml\.Settings"):
        asyncio.run(vibeml.launch_training(model="m/x", dataset="d/x", settings="x"))  # type: ignore[arg-type]


def test_api_demo_with_an_unknown_hyperparameter() -> None:
    with pytest.raises(ValidationError, match="nope"):
        asyncio.run(vibeml.launch_training(demo=True, hyperparameters={"nope": 1}))


def test_api_demo_with_steps_and_epochs() -> None:
    with pytest.raises(ValidationError, match="not both"):
        asyncio.run(vibeml.launch_training(demo=True, max_steps=5, num_epochs=2))
    code, out = cli("launch", "--demo", "--max-steps", "5", "--epochs", "2")
    assert code == 2 and "not both" in out


def test_the_demo_without_the_training_libraries_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code, out = cli("launch", "--demo")
    assert code == 2 and "needs the training libraries" in out and "vibeml[train]" in out


def test_api_demo_with_a_model_is_refused_everywhere() -> None:
    with pytest.raises(ConfigurationError, match="demo"):
        asyncio.run(vibeml.launch_training(model="m/x", demo=True))
    code, out = cli("launch", "--demo", "--model", "m/x")
    assert code == 2 and "demo" in out


@pytest.mark.parametrize("field", ["max_steps", "batch_size", "max_cost", "lora_r"])
def test_true_is_not_a_number(field: str) -> None:
    from vibeml.client import build_request

    with pytest.raises(ValidationError, match="not true/false"):
        build_request(model="m/x", dataset="d/x", **{field: True})
    assert build_request(model="m/x", dataset="d/x", packing=True).hyperparameters.packing is True


# ------------------------------------------------------------------------------------------- privacy


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_vibeml_home_is_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    old = os.umask(0o022)
    try:
        store = JobStore(home / "vibeml.db")
        store.list_jobs()
        from vibeml.safe_paths import make_private_dir

        job = make_private_dir(home / "jobs" / "vml-00000000")
    finally:
        os.umask(old)
    for folder in (home, home / "jobs", job):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((home / "vibeml.db").stat().st_mode) == 0o600
