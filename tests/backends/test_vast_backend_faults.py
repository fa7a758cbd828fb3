"""Faults on every call of the launch path, a CLI killed mid-launch, and the key in front ends.

The invariant in every case: the launch completes or fails with a clear VibeMLError, and afterwards
zero instances are left running or billing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import (
    SECRET_KEY,
    FakeProgramVast,
    assert_nothing_billing,
    make_service,
    wait_terminal,
)
from vibeml.backends.vast import VastBackend
from vibeml.exceptions import VibeMLError
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import JobRecord, JobStatus, TrainingRequest
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI

fake = support.fake
vast_env = support.vast_env

MODEL = "Qwen/Qwen2.5-0.5B"  # a known architecture: planning works offline; fake_program never loads it


def _inject(fake: FakeVast, kind: str, endpoint: str, n: int) -> None:
    if kind == "rate_limit":
        fake.faults.rate_limit(n, retry_after=0.05, endpoint=endpoint)
    elif kind == "server_error":
        fake.faults.server_error(n, status=503, endpoint=endpoint)
    elif kind == "slow":  # past the client's timeout: a timeout (and, for a create, a late landing)
        fake.faults.slow(0.6, n=n, endpoint=endpoint)
    elif kind == "drop":
        fake.faults.drop(n, endpoint=endpoint)
    elif kind == "drop_response":  # done on the server, answer lost
        fake.faults.drop_response(n, endpoint=endpoint)
    else:  # pragma: no cover
        raise ValueError(kind)


def _run_job(fake: FakeVast, kind: str, endpoint: str, n: int, **opts: Any) -> tuple[str, str]:
    """Launch through the service with a fault armed; returns (outcome, detail)."""
    settings: dict[str, Any] = {"http_timeout": 0.4, "start_timeout": 4.0, "linger": 4.0, "create_lookup_grace": 1.5}
    settings.update(opts)
    svc, _ = make_service(fake, backend_cls=FakeProgramVast, **settings)
    from vibeml.client import build_request

    req = build_request(model=MODEL, dataset="org/data", backend="vast", max_cost=5.0, max_steps=5)
    _inject(fake, kind, endpoint, n)
    try:
        record = svc.launch(req)
    except VibeMLError as exc:
        assert exc.message and "Traceback" not in exc.message
        [job] = svc.store.list_jobs()
        assert job.status is JobStatus.FAILED and job.error
        outcome, detail = "launch-failed", f"{type(exc).__name__}: {exc.message}"
    else:
        final = wait_terminal(svc, record.job_id, timeout=90, every=0.1)
        outcome, detail = final.status.value, final.error or ""
        if final.status is JobStatus.COMPLETED:
            assert final.output_dir and (Path(final.output_dir) / "adapter_model.safetensors").exists()
    fake.faults.clear()
    deadline = time.monotonic() + 10  # a create that timed out may land late; the backend destroys it
    while fake.instance_ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_nothing_billing(fake)
    return outcome, detail


LAUNCH_PATH = ("search", "create", "show_instance", "request_logs", "destroy")
KINDS = ("rate_limit", "server_error", "slow", "drop")
IDEMPOTENT = {"search", "show_instance", "request_logs", "destroy"}


MATRIX = [(e, k) for e in LAUNCH_PATH for k in KINDS] + [("create", "drop_response"), ("destroy", "drop_response")]


@pytest.mark.slow
@pytest.mark.parametrize(("endpoint", "kind"), MATRIX)
def test_fault_matrix_transient(vast_env: FakeVast, endpoint: str, kind: str) -> None:
    """Two faults in a row on one call: retries absorb them where a retry is safe."""
    outcome, detail = _run_job(vast_env, kind, endpoint, n=2)
    if endpoint in IDEMPOTENT or kind == "rate_limit" or kind == "drop_response":
        assert outcome == "completed", detail
    else:
        assert outcome in ("completed", "launch-failed"), detail


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", LAUNCH_PATH)
def test_fault_matrix_persistent(vast_env: FakeVast, endpoint: str) -> None:
    """A dozen failures in a row: the call that meets them fails, clearly; nothing is left billing."""
    outcome, detail = _run_job(vast_env, "server_error", endpoint, n=12)
    if endpoint in ("search", "create"):
        assert outcome == "launch-failed", detail
        assert "Vast" in detail or "instance" in detail
    else:  # waiting, status polls and destroys tolerate an outage and retry
        assert outcome in ("completed", "failed", "launch-failed"), detail


# ------------------------------------------------------------------------------ SIGKILL mid-launch


def _cli_env(fake: FakeVast) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "VIBEML_VAST_URL": fake.url,
            "VAST_API_KEY": SECRET_KEY,
            "VIBEML_REMOTE_INSTALL": "",
            "VIBEML_VAST_POLL_INTERVAL": "0.05",
            "VIBEML_VAST_START_TIMEOUT": "120",
            "VIBEML_VAST_REMOTE_DIR": "vibeml-job",
            "VIBEML_VAST_REMOTE_PYTHON": sys.executable,
            "VIBEML_VAST_LOG_MIRROR": "",
            "VIBEML_VAST_LOGS_POLL": "0.02",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
        }
    )
    return env


#: The paid launch the CLI tests start (and kill).
LAUNCH_ARGS = (
    "launch",
    "--backend",
    "vast",
    "--model",
    MODEL,
    "--dataset",
    "org/data",
    "--max-steps",
    "5",
    "--max-cost",
    "5",
)


_VAST_CLI = (
    "import sys; from vibeml.cli.main import app; from vibeml.cli import vast; "
    "names = [g.name for g in app.registered_groups]; 'vast' in names or vast.register(app); "
    "sys.argv[0] = 'vibeml'; app()"
)


def _vibeml(fake: FakeVast, *args: str, vast_group: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", _VAST_CLI, *args] if vast_group else [sys.executable, "-m", "vibeml", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_cli_env(fake))


def _kill_mid_launch(fake: FakeVast, home: Path) -> str:
    """Start `vibeml launch --backend vast`, SIGKILL it once it has rented an instance; returns the job id."""
    fake.faults.never_start(1)  # the launcher sits in "wait until running" with a rented instance
    proc = subprocess.Popen(
        [sys.executable, "-m", "vibeml", *LAUNCH_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_cli_env(fake),
    )
    deadline = time.monotonic() + 60
    handle: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = list((home / "jobs").glob("*/handle.json"))
        if found:
            handle = json.loads(found[0].read_text())
            if handle["data"].get("instance_id"):
                break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert handle.get("data", {}).get("instance_id"), "the launch never rented anything"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert fake.instance_ids() == [int(handle["data"]["instance_id"])]  # a paid instance is left behind
    return str(handle["job_id"])


@pytest.mark.slow
def test_sigkill_mid_launch_then_status_settles_it(vast_env: FakeVast, vibeml_env: Path) -> None:
    job_id = _kill_mid_launch(vast_env, vibeml_env)
    res = _vibeml(vast_env, "status", job_id, "--json")
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert status["status"] == "failed" and "launch did not complete" in status["error"]
    assert_nothing_billing(vast_env)
    assert SECRET_KEY not in res.stdout + res.stderr


@pytest.mark.slow
def test_sigkill_mid_launch_then_vast_cleanup_settles_it(vast_env: FakeVast, vibeml_env: Path) -> None:
    job_id = _kill_mid_launch(vast_env, vibeml_env)
    res = _vibeml(vast_env, "vast", "cleanup", "--yes", vast_group=True)
    assert res.returncode == 0, res.stderr
    assert_nothing_billing(vast_env)
    jobs = json.loads(_vibeml(vast_env, "jobs", "--json").stdout)
    assert [(j["job_id"], j["status"]) for j in jobs] == [(job_id, "failed")]
    assert SECRET_KEY not in res.stdout + res.stderr


def _job(store: JobStore, job_id: str, status: JobStatus) -> None:
    now = utcnow()
    request = TrainingRequest(model=MODEL, dataset="org/data", backend="vast", max_steps=3)
    record = JobRecord(job_id=job_id, status=status, backend="vast", request=request, created_at=now, updated_at=now)
    store.create(record)


def _rent_as_backend(client: VastAI, store: JobStore, job_id: str, offer: dict[str, Any]) -> tuple[int, str]:
    """What the backend does for ``job_id`` of ``store``'s home: record the intent, then create."""
    label = VastBackend(Settings.from_env(), store=store).label_for(job_id)
    intent = store.record_intent("vast", job_id, label, offer["id"])
    iid = int(client.create_instance(offer["id"], image="img", label=label)["new_contract"])
    store.record_intent_resource(intent, iid)
    return iid, label


def test_cleanup_destroys_only_this_homes_orphans(vast_env: FakeVast, vibeml_env: Path, tmp_path: Path) -> None:
    """The SDK's own instances (no label, or a hand-made vibeml- one) and a running job of a second VibeML
    home on the same account survive `vibeml vast cleanup --yes`; this home's instance whose job is over
    is destroyed."""
    home, other_home = JobStore(vibeml_env / "vibeml.db"), JobStore(tmp_path / "other-home" / "vibeml.db")
    assert home.installation_id() != other_home.installation_id()
    with VastAI(api_key=SECRET_KEY, server_url=vast_env.url) as client:
        offers = client.search_offers("num_gpus=1", limit=4, order="dph_total")
        sdk_plain = int(client.create_instance(offers[0]["id"], image="img")["new_contract"])
        named = client.create_instance(offers[1]["id"], image="img", label="vibeml-vml-0ld0ld00")  # by hand
        sdk_named = int(named["new_contract"])
        _job(other_home, "vml-07e1a0e5", JobStatus.RUNNING)
        theirs, theirs_label = _rent_as_backend(client, other_home, "vml-07e1a0e5", offers[2])
        _job(home, "vml-dead0001", JobStatus.FAILED)
        orphan, orphan_label = _rent_as_backend(client, home, "vml-dead0001", offers[3])
    assert vast_env.instance(sdk_plain).get("label") in (None, "")

    listed = json.loads(_vibeml(vast_env, "vast", "cleanup", "--json", vast_group=True).stdout)  # a dry run
    assert [(o["id"], o["owned"], o["destroyed"]) for o in listed["orphans"]] == [(str(orphan), True, None)]
    alone = {o["id"]: o for o in listed["left_alone"]}
    assert set(alone) == {str(sdk_plain), str(sdk_named), str(theirs)}
    assert not any(o["owned"] for o in alone.values())
    assert all(o["dph_total"] and o["dph_total"] > 0 for o in alone.values())  # what each costs, shown
    assert "another VibeML installation" in alone[str(theirs)]["reason"]
    assert len(vast_env.instance_ids()) == 4

    res = _vibeml(vast_env, "vast", "cleanup", "--yes", vast_group=True)
    assert res.returncode == 0, res.stderr
    assert "left alone" in res.stdout and theirs_label in res.stdout
    assert sorted(vast_env.instance_ids()) == sorted([sdk_plain, sdk_named, theirs])
    again = json.loads(_vibeml(vast_env, "vast", "cleanup", "--yes", "--json", vast_group=True).stdout)
    assert again["orphans"] == [] and len(again["left_alone"]) == 3
    assert orphan_label not in {vast_env.instance(i).get("label") for i in vast_env.instance_ids()}
    assert sorted(vast_env.instance_ids()) == sorted([sdk_plain, sdk_named, theirs])


def test_old_format_label_is_ours_only_when_our_job_used_it(vast_env: FakeVast, vibeml_env: Path) -> None:
    """A vibeml-<job> label from before installation ids: destroyed when this store's finished vast job
    carried it, left alone otherwise."""
    from vibeml.models import VastHandle, VastHandleData

    store = JobStore(vibeml_env / "vibeml.db")
    _job(store, "vml-01d0b001", JobStatus.COMPLETED)
    handle = VastHandle(
        job_id="vml-01d0b001",
        job_dir=str(vibeml_env / "jobs" / "vml-01d0b001"),
        backend_job_id="vibeml-vml-01d0b001",
        data=VastHandleData(
            label="vibeml-vml-01d0b001",
            launched=False,
            launcher_pid=1,
            output_dir=str(vibeml_env / "out"),
            checkpoint_dir=str(vibeml_env / "ckpt"),
            disk_gb=8,
        ),
    )
    store.update("vml-01d0b001", handle=handle)
    with VastAI(api_key=SECRET_KEY, server_url=vast_env.url) as client:
        offers = client.search_offers("num_gpus=1", limit=2, order="dph_total")
        old = int(client.create_instance(offers[0]["id"], image="img", label="vibeml-vml-01d0b001")["new_contract"])
        stray = int(client.create_instance(offers[1]["id"], image="img", label="vibeml-vml-5eeeeee5")["new_contract"])
    done = json.loads(_vibeml(vast_env, "vast", "cleanup", "--yes", "--json", vast_group=True).stdout)
    assert [(o["id"], o["destroyed"]) for o in done["orphans"]] == [(str(old), True)]
    assert [o["id"] for o in done["left_alone"]] == [str(stray)]
    assert vast_env.instance_ids() == [stray]


# ------------------------------------------------------------------------------ the key never shows


def _app() -> typer.Typer:
    from vibeml.cli import vast as vast_cli

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    vast_cli.register(app)
    return app


def test_the_key_never_appears_in_cli_output(
    vast_env: FakeVast, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    app = _app()
    outputs = []
    for args in (
        ["vast", "offers", "gpu_name=RTX_4090", "--limit", "3"],
        ["vast", "offers", "--json"],
        ["vast", "offers", "--type", "bid", "--order", "dph_total"],
        ["vast", "instances"],
        ["vast", "instances", "--json"],
        ["vast", "cleanup", "--yes"],
        ["vast", "destroy", "12345"],
        ["vast", "offers", "gpu_name=="],
    ):
        res = runner.invoke(app, args, env={"COLUMNS": "200"})
        outputs.append(res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "RTX 4090" in outputs[0] and json.loads(outputs[1])
    assert "does not exist" in outputs[6] or "not found" in outputs[6].lower()
    vast_env.faults.server_error(10, endpoint="search")
    outputs.append(runner.invoke(app, ["vast", "offers"]).output)
    assert "503" in outputs[-1]
    monkeypatch.setenv("VAST_API_KEY", SECRET_KEY[::-1])  # a wrong key: refused, and not echoed either
    refused = runner.invoke(app, ["vast", "instances"]).output
    assert "refused the API key" in refused
    for text in (*outputs, refused, caplog.text):
        assert SECRET_KEY not in text and SECRET_KEY[::-1] not in text


def test_errors_from_the_backend_never_carry_the_key(vast_env: FakeVast) -> None:
    svc, backend = make_service(vast_env, backend_cls=FakeProgramVast, http_timeout=0.3)
    from vibeml.client import build_request

    vast_env.faults.server_error(50, endpoint="create")
    with pytest.raises(VibeMLError) as info:
        svc.launch(build_request(model=MODEL, dataset="org/data", backend="vast", max_cost=5.0, max_steps=5))
    err = info.value
    for text in (str(err), repr(err), json.dumps(err.to_dict(), default=str), str(err.__cause__)):
        assert SECRET_KEY not in text
    assert repr(backend.client()).count("****") == 1
    vast_env.faults.clear()
    assert_nothing_billing(vast_env)
