"""A local dataset the trainer could not use is refused at launch, before a job exists or a GPU is rented;
custom column names are mapped with ``column_mapping`` (request, CLI ``--column-mapping``, MCP)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vibeml.client import VibeML, build_request
from vibeml.exceptions import DatasetError, ModelNotFoundError, ValidationError
from vibeml.settings import Settings

MAPPING = {"question": "instruction", "answer": "output"}


@pytest.fixture
def svc(vibeml_env: Path) -> VibeML:
    return VibeML(Settings.from_env())


@pytest.fixture
def model_dir(demo_assets_dir: Path) -> str:
    return str(demo_assets_dir / "tiny-llama")


def _jsonl(path: Path, rows: list[object]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.mark.needs_train
def test_unreadable_data_is_refused_before_any_job_exists(
    vibeml_env: Path, model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAST_API_KEY", "vk_test_never_used")
    monkeypatch.setenv("VIBEML_VAST_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail
    svc = VibeML(Settings.from_env())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": "ok"}\n{this is not json\n', encoding="utf-8")
    for backend, cap in (("local", None), ("vast", 5.0)):  # a paid backend: nothing is rented either
        with pytest.raises(DatasetError) as err:
            svc.launch(build_request(model=model_dir, dataset=str(bad), backend=backend, max_cost=cap))
        assert "line 2 is not valid JSON" in err.value.message and err.value.recovery_suggestion
    assert svc.store.list_jobs() == [] and not svc.settings.jobs_dir.exists()


@pytest.mark.needs_train
def test_custom_columns_need_a_mapping(svc: VibeML, model_dir: str, tmp_path: Path) -> None:
    data = _jsonl(tmp_path / "qa.jsonl", [{"question": f"q{i}", "answer": f"a{i}"} for i in range(8)])
    with pytest.raises(DatasetError) as err:
        svc.preview_launch(build_request(model=model_dir, dataset=data))
    assert "--column-mapping question=instruction,answer=output" in (err.value.recovery_suggestion or "")
    preview = svc.preview_launch(build_request(model=model_dir, dataset=data, column_mapping=MAPPING))
    assert preview.request.column_mapping == MAPPING  # the mapped data passes the same check the trainer makes

    with pytest.raises(DatasetError, match="does not have"):
        svc.preview_launch(build_request(model=model_dir, dataset=data, column_mapping={"prompt": "instruction"}))


@pytest.mark.parametrize("mapping", [{"a": "x", "b": "x"}, {"": "x"}, {"a": "\x00"}])
def test_bad_mappings_are_request_errors(mapping: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="column_mapping"):
        build_request(model="org/m", dataset="org/d", column_mapping=mapping)


@pytest.mark.needs_train
def test_cli_launch_passes_the_mapping_to_the_trainer(vibeml_env: Path, model_dir: str, tmp_path: Path) -> None:
    data = _jsonl(tmp_path / "qa.jsonl", [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(16)])
    vibeml = [sys.executable, "-m", "vibeml"]
    res = subprocess.run(
        [
            *vibeml,
            "launch",
            "--model",
            model_dir,
            "--dataset",
            data,
            "--max-steps",
            "2",
            "--column-mapping",
            "question=instruction,answer=output",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    job = json.loads(res.stdout)
    try:
        assert job["request"]["column_mapping"] == MAPPING
        config = json.loads((vibeml_env / "jobs" / job["job_id"] / "config.json").read_text())
        assert config["column_mapping"] == MAPPING  # what the trainer reads (it trains on it in tests/trainer)
    finally:
        subprocess.run([*vibeml, "stop", job["job_id"], "--grace", "5"], capture_output=True, timeout=60)


def _cache_model(hub_cache: Path, repo: str) -> None:
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / "config.json").write_text("{}")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")


def test_offline_a_local_run_of_what_is_not_cached_is_refused_before_a_job_exists(
    vibeml_env: Path, tmp_path: Path
) -> None:
    # conftest: HF_HUB_OFFLINE=1 and HF_HOME in tmp (empty caches)
    svc = VibeML(Settings.from_env())
    with pytest.raises(ModelNotFoundError, match="not in the local hub cache") as info:
        svc.prepare_launch(build_request(model="org/tiny", dataset="org/data", max_steps=2))
    assert "hf download org/tiny" in (info.value.recovery_suggestion or "")
    _cache_model(tmp_path / "hf-home" / "hub", "org/tiny")
    with pytest.raises(DatasetError, match="not in the local caches"):
        svc.prepare_launch(build_request(model="org/tiny", dataset="org/data", max_steps=2))
    (tmp_path / "hf-home" / "datasets" / "org___data").mkdir(parents=True)  # what load_dataset caches
    svc.prepare_launch(build_request(model="org/tiny", dataset="org/data", max_steps=2))
    assert svc.store.list_jobs(limit=5) == []
