"""The handle contract: one typed handle per backend, old stored handles still load, bad ones are clear errors.

A handle is what any process needs to find a launched job again. It is stored in SQLite (``jobs.handle_json``)
and beside the job (``<job dir>/handle.json``) as ``{"job_id", "backend", "backend_job_id", "job_dir",
"data": {...}}``; the JSON below is exactly what VibeML wrote before the handle models were typed.
"""

from __future__ import annotations

import ast
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vibeml.backends.registry import BUILTIN_BACKENDS
from vibeml.exceptions import BackendError
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import (
    JobHandle,
    JobRecord,
    JobStatus,
    LocalHandle,
    LocalHandleData,
    SkyPilotHandle,
    TrainingRequest,
    VastHandle,
    VastHandleData,
    load_handle,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "vibeml"

# ------------------------------------------------------------------------- the old JSON, as it was written

OLD_LOCAL = {
    "job_id": "vml-0b2fcda3",
    "backend": "local",
    "backend_job_id": "48213",
    "job_dir": "/home/u/.vibeml/jobs/vml-0b2fcda3",
    "data": {
        "pid": 48213,
        "pgid": 48213,
        "proc_start": 91826354,
        "events_path": "/home/u/.vibeml/jobs/vml-0b2fcda3/events.jsonl",
        "log_path": "/home/u/.vibeml/jobs/vml-0b2fcda3/train.log",
        "output_dir": "/home/u/.vibeml/jobs/vml-0b2fcda3/output",
        "argv": [
            "/usr/bin/python3",
            "-m",
            "vibeml.trainer",
            "--config",
            "/home/u/.vibeml/jobs/vml-0b2fcda3/config.json",
        ],
    },
}

#: Vast writes its handle three times: before the create, once an instance is rented, once it runs.
_VAST_BEFORE = {
    "label": "vibeml-vml-5e1d0c77",
    "launched": False,
    "launcher_pid": 5120,
    "launcher_start": 7712,
    "remote_dir": "/workspace/vibeml",
    "output_dir": "/home/u/.vibeml/jobs/vml-5e1d0c77/output",
    "checkpoint_dir": "/home/u/.vibeml/jobs/vml-5e1d0c77/checkpoints",
    "max_cost": 2.5,
    "disk_gb": 58,
}
_VAST_RENTED = {
    **_VAST_BEFORE,
    "instance_id": 18330211,
    "offer_id": 9912034,
    "created_at": 1767225600.25,
    "storage_rate": 0.0161,
    "gpu_rate": 0.3139,
    "bid": None,
    "budget_seconds": 27238.6,
    "gpu_name": "RTX 4090",
    "price_per_hour": 0.33,
}
_VAST_LAUNCHED = {**_VAST_RENTED, "launched": True, "running_from": 1767225641.5}


def _vast(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": "vml-5e1d0c77",
        "backend": "vast",
        "backend_job_id": str(data.get("instance_id") or data["label"]),
        "job_dir": "/home/u/.vibeml/jobs/vml-5e1d0c77",
        "data": data,
    }


OLD_SKY = {
    "job_id": "vml-sky1",
    "backend": "skypilot",
    "backend_job_id": "vibeml-vml-sky1",
    "job_dir": "/home/u/.vibeml/jobs/vml-sky1",
    "data": {
        "mode": "managed",
        "cluster_name": "vibeml-vml-sky1",
        "request_id": "5e7e1f0c-2b8a-4f51-9a53-0d6d0a0b3c11",
        "num_nodes": 2,
        "hourly_rate": 2.2,
        "hourly_cap": 2.64,
        "store_url": "s3://my-bucket/vibeml",
        "store_name": None,
        "remote_output_dir": "~/sky_workdir/vibeml-job/output",
        "remote_checkpoint_dir": "~/sky_workdir/vibeml-job/checkpoints",
        "local_output_dir": "/home/u/.vibeml/jobs/vml-sky1/output",
        "events_path": "/home/u/.vibeml/jobs/vml-sky1/events.jsonl",
        "runtime_limit_seconds": 3480,
        "launched_at": 1767225600.0,
    },
}

FULL_OLD = [
    pytest.param(OLD_LOCAL, LocalHandle, id="local"),
    pytest.param(_vast(_VAST_LAUNCHED), VastHandle, id="vast-launched"),
    pytest.param(OLD_SKY, SkyPilotHandle, id="skypilot"),
]


@pytest.mark.parametrize(("old", "model"), FULL_OLD)
@pytest.mark.parametrize("indent", [None, 2])  # the store wrote it compact, handle.json indented
def test_old_json_round_trips(old: dict[str, Any], model: type[JobHandle], indent: int | None) -> None:
    text = json.dumps(old, indent=indent)
    handle = load_handle(text)
    assert type(handle) is model and handle.backend == old["backend"]
    assert json.loads(handle.model_dump_json()) == old  # same JSON shape, same values
    assert load_handle(handle.model_dump_json(indent=2)) == handle
    assert load_handle(old) == handle  # already-parsed JSON too


def test_old_handles_read_as_attributes() -> None:
    local = load_handle(json.dumps(OLD_LOCAL))
    assert isinstance(local, LocalHandle)
    assert (local.data.pid, local.data.pgid, local.data.proc_start) == (48213, 48213, 91826354)
    assert local.data.argv[-2:] == ("--config", "/home/u/.vibeml/jobs/vml-0b2fcda3/config.json")
    vast = load_handle(json.dumps(_vast(_VAST_LAUNCHED)))
    assert isinstance(vast, VastHandle)
    assert vast.data.launched and vast.data.instance_id == 18330211 and vast.data.bid is None
    sky = load_handle(json.dumps(OLD_SKY))
    assert isinstance(sky, SkyPilotHandle)
    assert sky.data.mode == "managed" and sky.data.num_nodes == 2 and sky.data.store_name is None


@pytest.mark.parametrize("stage", [_VAST_BEFORE, _VAST_RENTED], ids=["before-the-create", "rented"])
def test_vast_handle_written_mid_launch_loads(stage: dict[str, Any]) -> None:
    """Written before the instance runs: the later fields are absent, and read back as None."""
    handle = load_handle(json.dumps(_vast(stage)))
    assert isinstance(handle, VastHandle) and not handle.data.launched and handle.data.running_from is None
    assert handle.data.instance_id == stage.get("instance_id")
    dumped = json.loads(handle.model_dump_json())
    assert {k: dumped["data"][k] for k in stage} == stage
    assert all(v is None for k, v in dumped["data"].items() if k not in stage)
    assert load_handle(dumped) == handle


def test_every_builtin_backend_has_a_handle_kind() -> None:
    kinds = {m.model_fields["backend"].default for m in (LocalHandle, VastHandle, SkyPilotHandle)}
    assert kinds == set(BUILTIN_BACKENDS)


@settings(max_examples=60, deadline=None)
@given(
    launched=st.booleans(),
    iid=st.integers(1, 2**40),
    rate=st.floats(0, 100, allow_nan=False),
    bid=st.none() | st.floats(0, 50, allow_nan=False),
    times=st.tuples(st.floats(0, 2e9), st.floats(0, 2e9)),
    label=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40),
)
def test_vast_handles_round_trip(
    launched: bool, iid: int, rate: float, bid: float | None, times: tuple[float, float], label: str
) -> None:
    data = VastHandleData(
        label=label,
        launched=launched,
        launcher_pid=1,
        output_dir="/o",
        checkpoint_dir="/c",
        disk_gb=8,
        instance_id=iid,
        gpu_rate=rate,
        bid=bid,
        created_at=times[0],
        running_from=times[1],
    )
    handle = VastHandle(job_id="vml-1", backend_job_id=str(iid), job_dir="/j", data=data)
    assert load_handle(handle.model_dump_json()) == handle
    record = JobRecord(
        job_id="vml-1",
        status=JobStatus.RUNNING,
        backend="vast",
        request=TrainingRequest(model="m/x", dataset="d/x"),
        handle=handle,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    assert JobRecord.model_validate_json(record.model_dump_json()).handle == handle


# ------------------------------------------------------------------------------------ malformed handles


def _broken(path: list[str], value: Any, base: dict[str, Any] = OLD_LOCAL) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DROP = object()

MALFORMED = [
    pytest.param(json.dumps(_broken(["data", "pid"], _DROP)), "data.pid", id="missing-pid"),
    pytest.param(json.dumps(_broken(["data", "pid"], "abc")), "data.pid", id="pid-not-a-number"),
    pytest.param(json.dumps(_broken(["data", "pid"], True)), "data.pid", id="pid-true"),
    pytest.param(json.dumps(_broken(["data", "pid"], 0)), "data.pid", id="pid-0"),  # killpg(0) is our own group
    pytest.param(json.dumps(_broken(["data", "surprise"], 1)), "data.surprise", id="unknown-key"),
    pytest.param(json.dumps(_broken(["data"], "x")), "data", id="data-not-an-object"),
    pytest.param(json.dumps(_broken(["backend"], "moon")), "moon", id="unknown-backend"),
    pytest.param(json.dumps(_broken(["backend"], _DROP)), "backend", id="no-backend"),
    pytest.param(json.dumps(_broken(["backend"], "vast")), "data.label", id="local-data-as-vast"),
    pytest.param(
        json.dumps(_vast({**_VAST_BEFORE, "launched": True})), "instance_id", id="vast-launched-without-instance"
    ),
    pytest.param(json.dumps(_broken(["data", "mode"], "serverless", OLD_SKY)), "data.mode", id="skypilot-unknown-mode"),
    pytest.param(json.dumps(_broken(["data", "hourly_rate"], float("inf"), OLD_SKY)), "hourly_rate", id="inf-rate"),
    pytest.param('{"job_id": "vml-0b2fcda3", "backend": "local", "data": {', "Invalid JSON", id="truncated"),
    pytest.param("[]", "handle", id="a-list"),
]


@pytest.mark.parametrize(("text", "needle"), MALFORMED)
def test_malformed_handle_is_a_clear_error(text: str, needle: str) -> None:
    with pytest.raises(BackendError) as info:
        load_handle(text, where="the test")
    err = info.value
    assert needle in err.message and "the test" in err.message
    assert err.recovery_suggestion and "vibeml vast cleanup" in err.recovery_suggestion
    assert err.__cause__ is None and err.__suppress_context__  # no pydantic traceback chained on
    assert "pydantic" not in err.message and "errors.pydantic.dev" not in err.message
    if text.endswith("}"):  # a whole JSON object: the message names the job
        job_id = json.loads(text)["job_id"]
        assert err.context["job_id"] == job_id and f"job {job_id} " in err.message


def _store_with(db: Path, handle_json: str) -> JobStore:
    """A jobs database holding one job whose handle column is ``handle_json`` (as an old VibeML left it)."""
    store = JobStore(db)
    now = utcnow()
    store.create(
        JobRecord(
            job_id="vml-0b2fcda3",
            status=JobStatus.RUNNING,
            backend="local",
            request=TrainingRequest(model="m/x", dataset="d/x", max_steps=3),
            created_at=now,
            updated_at=now,
        )
    )
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE jobs SET handle_json = ? WHERE job_id = ?", (handle_json, "vml-0b2fcda3"))
    conn.commit()
    conn.close()
    return store


def test_old_row_in_sqlite_loads_typed_and_serves_logs(tmp_path: Path) -> None:
    from vibeml.client import VibeML
    from vibeml.settings import Settings

    settings = Settings.from_env()
    job_dir = settings.jobs_dir / "vml-0b2fcda3"
    job_dir.mkdir(parents=True)
    (job_dir / "train.log").write_text("loading\nstep 3 loss 1.5\n", encoding="utf-8")
    old = json.loads(json.dumps(OLD_LOCAL).replace("/home/u/.vibeml/jobs/vml-0b2fcda3", str(job_dir)))
    old["data"]["pid"] = old["data"]["pgid"] = 4194305  # above Linux's pid_max: the old job is gone
    store = _store_with(settings.db_path, json.dumps(old))
    handle = store.get("vml-0b2fcda3").handle
    assert isinstance(handle, LocalHandle) and handle.data.log_path == str(job_dir / "train.log")
    svc = VibeML(settings, store=store)
    assert list(svc.logs("vml-0b2fcda3")) == ["loading", "step 3 loss 1.5"]
    record = svc.get_status("vml-0b2fcda3")  # the process is gone and left no final event
    assert record.status is JobStatus.FAILED and isinstance(record.handle, LocalHandle)


def test_malformed_row_in_sqlite_is_a_backend_error(tmp_path: Path) -> None:
    store = _store_with(tmp_path / "jobs.db", json.dumps(_broken(["data", "pid"], "abc")))
    for read in (lambda: store.get("vml-0b2fcda3"), lambda: store.find("vml-0b"), store.list_jobs):
        with pytest.raises(BackendError) as info:
            read()
        assert "vml-0b2fcda3" in info.value.message and "data.pid" in info.value.message
        assert str(store.path) in info.value.message


def test_malformed_row_through_the_cli_is_a_message_not_a_traceback() -> None:
    from vibeml.cli.main import app
    from vibeml.settings import Settings

    _store_with(Settings.from_env().db_path, json.dumps(_broken(["data", "surprise"], 1)))
    result = CliRunner().invoke(app, ["status", "vml-0b2fcda3"])
    assert result.exit_code == BackendError.exit_code, result.output
    assert "data.surprise" in result.stderr and "What to do:" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_malformed_handle_file_is_a_backend_error() -> None:
    """A launcher killed before the store had the handle leaves handle.json; a damaged one is not ignored
    (the job would be marked failed while its process or machine may still run)."""
    from vibeml.client import VibeML
    from vibeml.settings import Settings

    svc = VibeML(Settings.from_env())
    store = svc.store
    now = utcnow()
    store.create(
        JobRecord(
            job_id="vml-0b2fcda3",
            status=JobStatus.PROVISIONING,
            backend="local",
            request=TrainingRequest(model="m/x", dataset="d/x", max_steps=3),
            created_at=now,
            updated_at=now,
        )
    )
    job_dir = svc.job_dir("vml-0b2fcda3")
    job_dir.mkdir(parents=True)
    (job_dir / "handle.json").write_text(json.dumps(_broken(["data", "pgid"], _DROP)), encoding="utf-8")
    with pytest.raises(BackendError) as info:
        svc.get_status("vml-0b2fcda3")
    assert "data.pgid" in info.value.message and str(job_dir / "handle.json") in info.value.message
    assert store.get("vml-0b2fcda3").handle is None  # nothing half-adopted


def test_a_backend_refuses_another_backends_handle(tmp_path: Path) -> None:
    from vibeml.backends.local import LocalBackend
    from vibeml.settings import Settings

    vast = load_handle(json.dumps(_vast(_VAST_LAUNCHED)))
    backend = LocalBackend(Settings.from_env())
    with pytest.raises(BackendError, match="vast handle; the local backend cannot track it"):
        backend.status(vast)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="cannot track it"):
        backend.stop(vast)  # type: ignore[arg-type]


def test_handles_are_frozen() -> None:
    handle = load_handle(json.dumps(OLD_LOCAL))
    with pytest.raises(ValueError):
        handle.data.pid = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        LocalHandleData.model_validate({**OLD_LOCAL["data"], "argv": "python -m x"})


def test_handle_files_are_written_atomically_and_private(tmp_path: Path) -> None:
    from vibeml.backends.base import HANDLE_FILENAME, write_handle_file

    handle = load_handle(json.dumps(OLD_LOCAL)).model_copy(update={"job_dir": str(tmp_path)})
    write_handle_file(handle)
    path = tmp_path / HANDLE_FILENAME
    assert load_handle(path.read_text(encoding="utf-8")) == handle
    assert path.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == [HANDLE_FILENAME]  # no temp file left behind
    with pytest.raises(BackendError, match="cannot write the job's handle"):
        write_handle_file(handle.model_copy(update={"job_dir": str(tmp_path / "missing" / "dir")}))


# ------------------------------------------------------------------------ no loose dicts at the boundary

_HANDLE_TYPES = {"JobHandle", "LocalHandle", "VastHandle", "SkyPilotHandle", "HandleT"}
_LOOSE = re.compile(r"\b(dict|Dict|Mapping|MutableMapping|Any|object)\b")
#: Parameters of handle-taking methods that are dicts on purpose, and why they are not handles.
_NOT_HANDLES = {
    "inst": "a Vast.ai API instance row, as the API returns it",
    "state": "the backend's own mutable job-state file (sky_state.json), not the handle",
    "events": "the trainer's events (their contract is trainer/events.py's)",
}
#: Handle-taking methods that return something loose on purpose, and what it is.
_NOT_HANDLE_RETURNS = {
    "SkyPilotBackend._state": "the job-state file (sky_state.json), not the handle",
    "SkyPilotBackend._managed_record": "a record of SkyPilot's own type (SkyPilot is imported lazily)",
}


def _annotation(node: ast.expr | None) -> str:
    return "" if node is None else ast.unparse(node)


def _handle_models() -> dict[str, ast.ClassDef]:
    """The classes in models.py that derive (directly or not) from JobHandle or HandleData."""
    tree = ast.parse((SRC / "models.py").read_text(encoding="utf-8"))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    found = {"JobHandle", "HandleData"}
    changed = True
    while changed:
        changed = False
        for name, node in classes.items():
            if name not in found and any(_annotation(b) in found for b in node.bases):
                found.add(name)
                changed = True
    return {n: classes[n] for n in found}


def test_handle_models_have_no_loose_fields() -> None:
    models = _handle_models()
    assert {"LocalHandleData", "VastHandleData", "SkyPilotHandleData", "LocalHandle", "VastHandle"} <= set(models)
    for name, node in models.items():
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign):
                ann = _annotation(stmt.annotation)
                field = _annotation(stmt.target)
                assert not _LOOSE.search(ann), f"{name}.{field}: {ann}"
                assert not re.search(r"\blist\[", ann), f"{name}.{field}: a frozen handle holds tuples, not lists"


def test_handle_models_are_frozen_and_closed_at_runtime() -> None:
    from vibeml import models

    for name in _handle_models():
        cls = getattr(models, name)
        assert cls.model_config.get("frozen") is True, name
        assert cls.model_config.get("extra") == "forbid", name


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef]]:
    out: list[tuple[str, ast.FunctionDef]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            out += [(f"{node.name}.{f.name}", f) for f in node.body if isinstance(f, ast.FunctionDef)]
            for stmt in node.body:  # methods declared under `if TYPE_CHECKING:`
                if isinstance(stmt, ast.If):
                    out += [(f"{node.name}.{f.name}", f) for f in stmt.body if isinstance(f, ast.FunctionDef)]
    out += [(f.name, f) for f in tree.body if isinstance(f, ast.FunctionDef)]
    return out


def _mentions_handle(ann: str) -> bool:
    return any(re.search(rf"\b{t}\b", ann) for t in _HANDLE_TYPES) or "HandleData" in ann


def test_backend_methods_take_and_return_typed_handles() -> None:
    offenders: list[str] = []
    checked = 0
    for path in sorted((SRC / "backends").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for qual, fn in _functions(tree):
            args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
            anns = {a.arg: _annotation(a.annotation) for a in args if a.arg not in ("self", "cls")}
            ret = _annotation(fn.returns)
            takes = {"handle", "data"} & set(anns) or any(_mentions_handle(a) for a in anns.values())
            if not (takes or _mentions_handle(ret)):
                continue
            checked += 1
            where = f"{path.relative_to(SRC / 'backends')}:{qual}"
            if _LOOSE.search(ret) and (_mentions_handle(ret) or qual not in _NOT_HANDLE_RETURNS):
                offenders.append(f"{where} returns {ret}")
            for arg, ann in anns.items():
                if arg in ("handle", "data") or _mentions_handle(ann):
                    if not ann or _LOOSE.search(ann):
                        offenders.append(f"{where}({arg}: {ann or 'unannotated'})")
                elif _LOOSE.search(ann) and arg not in _NOT_HANDLES:
                    offenders.append(f"{where}({arg}: {ann}) is a loose dict beside a handle")
            if anns.get("handle") == "JobHandle" and path.name != "base.py" and fn.name != "own":
                offenders.append(f"{where} takes any backend's JobHandle, not its own")
    assert offenders == [], "\n".join(offenders)
    assert checked >= 40, checked  # the scan really saw the backends' methods


def test_each_backend_launches_its_own_handle_type() -> None:
    for path in sorted((SRC / "backends").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            kinds = [
                _annotation(s.value)
                for s in cls.body
                if isinstance(s, ast.AnnAssign) and _annotation(s.target) == "handle_type" and s.value is not None
            ]
            launch = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "launch"), None)
            if launch is None or path.name == "base.py":
                continue
            assert kinds, f"{path.name}:{cls.name} declares no handle_type"
            assert _annotation(launch.returns) == kinds[0], f"{path.name}:{cls.name}.launch"
            assert any(_annotation(b) == f"Backend[{kinds[0]}]" for b in cls.bases), f"{cls.name} bases"


def test_no_string_keyed_handle_access_remains() -> None:
    """Handles are read by attribute: no ``handle.data[...]``, ``.get(...)`` or in-place update anywhere."""
    pattern = re.compile(r"\bhandle\.data(\[|\.get\(|\.setdefault\(|\.update\(|\.pop\()")
    offenders = [
        f"{path.relative_to(SRC)}:{lineno}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "\n".join(offenders)
