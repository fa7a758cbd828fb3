"""A create that lands after its client gave up (issue 13, item 4).

The fake holds a create unapplied (``faults.land_late``) and applies it when the test says: before the
client's retry, while the retry's instance runs, after that instance was destroyed (its offer free again),
after the launch gave up, or after the launcher was SIGKILLed. Every time, afterwards nothing VibeML
created is billing and the store records every instance the fake ever made under the job's label (the
job's own, on its intent; every other one as a destroyed stray).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_faults import LAUNCH_ARGS, MODEL, _cli_env, _vibeml
from tests.backends.test_vast_backend_support import (
    FakeProgramVast,
    assert_nothing_billing,
    make_service,
    wait_terminal,
)
from vibeml.backends.vast import VastBackend
from vibeml.client import VibeML, build_request
from vibeml.exceptions import BackendError
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import JobRecord, JobStatus, TrainingRequest
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI

fake = support.fake
vast_env = support.vast_env


def _until(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _ever_created(fake: FakeVast) -> dict[int, str | None]:
    """Every instance the fake ever made (destroyed ones too) → its label."""
    with fake.state.lock:
        return {i: inst.label for i, inst in fake.state.instances.items()}


def _live_under(fake: FakeVast, label: str) -> list[int]:
    with fake.state.lock:
        return [i for i, inst in fake.state.instances.items() if inst.label == label and inst.destroyed_at is None]


def _assert_settled(fake: FakeVast, store: JobStore, label: str) -> dict[str, set[int]]:
    """Nothing billing; every instance the fake made carries ``label`` and is in the store."""
    _until(lambda: not _live_under(fake, label), what=f"the instances under {label} to be destroyed")
    assert_nothing_billing(fake)
    made = _ever_created(fake)
    assert set(made.values()) <= {label}, made  # every try of the launch reused the job's one label
    adopted = {int(i["resource_id"]) for i in store.intents("vast") if i["label"] == label and i["resource_id"]}
    strays = {int(s["resource_id"]) for s in store.strays("vast") if s["label"] == label}
    assert all(s["destroyed_at"] for s in store.strays("vast")), store.strays("vast")
    assert set(made) <= adopted | strays, (made, adopted, strays)
    return {"adopted": adopted, "strays": strays}


# ------------------------------------------------------------------------------ in one process


@pytest.fixture
def service(vast_env: FakeVast) -> Iterator[tuple[VibeML, VastBackend]]:
    svc, backend = make_service(
        vast_env,
        backend_cls=FakeProgramVast,
        backend_kwargs={"mode": "graceful"},
        http_timeout=2.0,
        create_lookup_grace=0.3,
        landing_grace=20.0,  # longer than a job here: a landing after the job ended is still inside it
        start_timeout=10.0,
        linger=5.0,
    )
    yield svc, backend
    backend.stop_sweeper()


def _request() -> TrainingRequest:
    return build_request(model=MODEL, dataset="org/data", backend="vast", max_cost=5.0, max_steps=5)


def _launch_running(svc: VibeML) -> JobRecord:
    record = svc.launch(_request())
    _until(lambda: svc.get_status(record.job_id).status is JobStatus.RUNNING, what="the job to run")
    return record


def _stop(svc: VibeML, job_id: str) -> JobRecord:
    svc.stop(job_id, grace_seconds=0)
    return wait_terminal(svc, job_id, timeout=30, every=0.05)


def test_landing_before_the_retry_is_adopted(service: tuple[VibeML, VastBackend], vast_env: FakeVast) -> None:
    """The dropped create lands at once: the client finds it by label and uses it; nothing else is rented."""
    svc, backend = service
    vast_env.faults.land_late(0.0)
    record = _launch_running(svc)
    label = backend.label_for(record.job_id)
    [iid] = _live_under(vast_env, label)
    assert _stop(svc, record.job_id).status is JobStatus.STOPPED
    got = _assert_settled(vast_env, svc.store, label)
    assert got == {"adopted": {iid}, "strays": set()}


def test_landing_while_the_retrys_instance_runs_is_destroyed_at_once(
    service: tuple[VibeML, VastBackend], vast_env: FakeVast
) -> None:
    """The retry found the first offer gone and rented the next one (A); then the first create lands (B)
    under the same label while A trains: B is destroyed and recorded, A keeps running."""
    svc, backend = service
    landing = vast_env.faults.land_late(None)
    vast_env.faults.server_error(1, status=404, endpoint="create")  # the retry: "no such offer"
    record = _launch_running(svc)
    label = backend.label_for(record.job_id)
    [a] = _live_under(vast_env, label)
    landing.release()
    _until(landing.landed.is_set, what="the late create to land")
    assert landing.replies[0][0] == 200, landing.replies
    b = int(landing.replies[0][1]["new_contract"])
    _until(lambda: _live_under(vast_env, label) == [a], what="the late instance to be destroyed")
    assert svc.get_status(record.job_id).status is JobStatus.RUNNING
    assert [int(s["resource_id"]) for s in svc.store.strays("vast", record.job_id)] == [b]
    assert any(e["kind"] == "stray_destroyed" for e in svc.store.events(record.job_id))
    _stop(svc, record.job_id)
    assert _assert_settled(vast_env, svc.store, label) == {"adopted": {a}, "strays": {b}}


def test_landing_after_the_retrys_instance_was_destroyed_is_destroyed(
    service: tuple[VibeML, VastBackend], vast_env: FakeVast
) -> None:
    """The retry rented A on the same offer; the job ends and A is destroyed, freeing the offer; only then
    does the first create land (B). The launching process's sweep destroys B."""
    svc, backend = service
    landing = vast_env.faults.land_late(None)
    record = _launch_running(svc)
    label = backend.label_for(record.job_id)
    [a] = _live_under(vast_env, label)
    assert _stop(svc, record.job_id).status is JobStatus.STOPPED
    assert _live_under(vast_env, label) == []
    landing.release()
    _until(landing.landed.is_set, what="the late create to land")
    b = int(landing.replies[0][1]["new_contract"])
    assert b != a and vast_env.instance(b)["label"] == label  # the freed offer was rented again
    assert _assert_settled(vast_env, svc.store, label) == {"adopted": {a}, "strays": {b}}


def test_landing_after_the_launch_gave_up_is_destroyed(service: tuple[VibeML, VastBackend], vast_env: FakeVast) -> None:
    """Both tries are lost and nothing appears within the lookup grace: the launch fails. The first create
    lands afterwards; the sweep destroys it."""
    svc, backend = service
    landing = vast_env.faults.land_late(None)
    vast_env.faults.drop(1, endpoint="create")
    with pytest.raises(BackendError, match="ambiguously"):
        svc.launch(_request())
    [job] = svc.store.list_jobs()
    assert job.status is JobStatus.FAILED
    label = backend.label_for(job.job_id)
    landing.release()
    _until(landing.landed.is_set, what="the late create to land")
    b = int(landing.replies[0][1]["new_contract"])
    assert _assert_settled(vast_env, svc.store, label) == {"adopted": set(), "strays": {b}}


def test_the_next_command_destroys_a_late_landing_and_closes_settled_intents(
    vast_env: FakeVast, vibeml_env: Path
) -> None:
    """No launcher is left (it died): the sweep the next command runs destroys what landed under a finished
    job's label, leaves a live job's own instance and other labels alone, and closes the intents once their
    grace has passed with nothing left."""
    store = JobStore(vibeml_env / "vibeml.db")
    now = utcnow()
    request = TrainingRequest(model=MODEL, dataset="org/data", backend="vast", max_steps=3)
    store.create(
        JobRecord(
            job_id="vml-dead0002",
            status=JobStatus.FAILED,
            backend="vast",
            request=request,
            created_at=now,
            updated_at=now,
        )
    )
    backend = VastBackend(Settings.from_env(), options=support.options(landing_grace=0.0), store=store)
    label = backend.label_for("vml-dead0002")
    store.record_intent("vast", "vml-dead0002", label, 1)
    with VastAI(api_key=support.SECRET_KEY, server_url=vast_env.url) as client:
        offers = client.search_offers("num_gpus=1", limit=2, order="dph_total")
        late = int(client.create_instance(offers[0]["id"], image="img", label=label)["new_contract"])
        users = int(client.create_instance(offers[1]["id"], image="img", label="my-own")["new_contract"])
    met = backend.sweep()
    assert met == [{"id": late, "label": label, "job_id": "vml-dead0002", "destroyed": True}]
    assert vast_env.instance_ids() == [users]
    assert store.open_intents("vast") == []  # grace 0: settled at once
    assert [i["closed_why"] for i in store.intents("vast")] == ["landing grace passed; nothing else under the label"]
    assert backend.sweep() == []


# ------------------------------------------------------------------------------ SIGKILL of the CLI


def _launch_cli(fake: FakeVast) -> subprocess.Popen[str]:
    env = _cli_env(fake)
    env["VIBEML_VAST_LANDING_GRACE"] = "120"
    return subprocess.Popen(
        [sys.executable, "-m", "vibeml", *LAUNCH_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill_when(proc: subprocess.Popen[str], cond: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the launcher exited before {what}: {out}\n{err}")
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def _job_after(fake: FakeVast, home: Path, command: str) -> dict[str, Any]:
    """Run the next command (``status`` or ``jobs``); the one job as it reports it."""
    [job_id] = [p.name for p in (home / "jobs").iterdir()]
    if command == "status":
        res = _vibeml(fake, "status", job_id, "--json")
        assert res.returncode == 0, res.stderr
        return dict(json.loads(res.stdout))
    res = _vibeml(fake, "jobs", "--json")
    assert res.returncode == 0, res.stderr
    [job] = json.loads(res.stdout)
    return dict(job)


def _label(home: Path) -> str:
    [handle] = list((home / "jobs").glob("*/handle.json"))
    return str(json.loads(handle.read_text())["data"]["label"])


KILL_POINTS = [
    ("in-flight-never-lands", "status"),
    ("in-flight-never-lands", "jobs"),
    ("in-flight-lands-after-the-next-command", "status"),
    ("in-flight-lands-after-the-next-command", "jobs"),
    ("just-after-it-landed", "status"),
    ("just-after-it-landed", "jobs"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "command"), KILL_POINTS)
def test_sigkill_during_a_slow_create(vast_env: FakeVast, vibeml_env: Path, point: str, command: str) -> None:
    vast_env.faults.never_start(5)  # what lands stays loading (and billing): no trainer runs here
    if point == "just-after-it-landed":
        vast_env.faults.slow_response(60.0, endpoint="create")  # rented at once, the answer never comes back
        proc = _launch_cli(vast_env)
        _kill_when(proc, vast_env.instance_ids, "the create landed")
        [rented] = vast_env.instance_ids()
    else:
        landing = vast_env.faults.land_late(None, answer=True)  # the client waits on it; it has not landed
        proc = _launch_cli(vast_env)
        _kill_when(proc, landing.received.is_set, "the create was sent")
        time.sleep(0.05)
        assert vast_env.instance_ids() == []
    store = JobStore(vibeml_env / "vibeml.db")
    label = _label(vibeml_env)
    assert [i["label"] for i in store.intents("vast")] == [label]  # recorded before the create went out

    job = _job_after(vast_env, vibeml_env, command)
    assert job["status"] == "failed"
    assert "before renting anything" not in job["error"]
    if point == "just-after-it-landed":
        assert f"it had rented instance(s) {rented}, which VibeML destroyed" in job["error"], job["error"]
        assert [int(s["resource_id"]) for s in store.strays("vast")] == [rented]
    else:
        assert "killed during a create; VibeML will find and destroy anything it rented" in job["error"], job
    assert_nothing_billing(vast_env)

    if point == "in-flight-lands-after-the-next-command":
        landing.release()  # the dead launcher's create lands now, under a finished job's label
        _until(landing.landed.is_set, what="the late create to land")
        [late] = vast_env.instance_ids()
        again = _job_after(vast_env, vibeml_env, "jobs" if command == "status" else "status")
        assert again["status"] == "failed" and again["error"] == job["error"]
        assert_nothing_billing(vast_env)
        assert [int(s["resource_id"]) for s in store.strays("vast")] == [late]
    made = _ever_created(vast_env)
    assert set(made) == {int(s["resource_id"]) for s in store.strays("vast")}
    assert set(made.values()) <= {label}
    assert store.open_intents("vast")  # the grace (120 s) has not passed: later commands keep watching


@pytest.mark.slow
def test_sigkill_before_the_create_is_sent_claims_nothing_rented(vast_env: FakeVast, vibeml_env: Path) -> None:
    """Killed while its store is locked by another writer, before its handle and intent exist: nothing was
    sent, and once the adoption window passes the job says the launcher stopped before the job started."""
    store = JobStore(vibeml_env / "vibeml.db")
    store.installation_id()
    vast_env.faults.slow(0.5, n=None, endpoint="search")
    proc = _launch_cli(vast_env)
    _until(lambda: store.list_jobs(), timeout=60, what="the job's record")
    lock = sqlite3.connect(vibeml_env / "vibeml.db", timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the launcher's own store cannot open (migrate) until we let go
    try:
        time.sleep(1.5)  # the launcher now waits on the lock (its ledger line, or its own store opening)
        assert proc.poll() is None and vast_env.count("create") == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert vast_env.count("create") == 0 and store.intents("vast") == []
    [job] = store.list_jobs()
    conn = sqlite3.connect(vibeml_env / "vibeml.db")  # let the 120 s adoption window pass
    conn.execute("UPDATE jobs SET created_at = '2000-01-01T00:00:00+00:00'")
    conn.commit()
    conn.close()
    res = _vibeml(vast_env, "status", job.job_id, "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["status"] == "failed" and "before" in got["error"] and "rented" not in got["error"], got
    assert_nothing_billing(vast_env)
    assert _ever_created(vast_env) == {}
