"""The ledger settles: every job ends with a final cost, and nothing stays "committed" once a job is over.

The service half runs through a paid backend whose bill is a file in the job folder (no process, no cloud):
each test sets what the "provider" reports and checks the ledger's spent/committed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibeml.backends.base import Capabilities, Capability, LaunchChoice, write_handle_file
from vibeml.backends.local import LocalBackend
from vibeml.backends.registry import default_registry
from vibeml.client import VibeML, build_request
from vibeml.exceptions import BackendError
from vibeml.jobs.migrations import MIGRATIONS
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import JobProgress, JobRecord, JobStatus, LocalHandle, LocalHandleData, TrainingRequest
from vibeml.settings import Settings
from vibeml.workflows.registry import TrainingProgram

MONTH = utcnow().strftime("%Y-%m")
BILL = "bill.json"


def _record(job_id: str, status: JobStatus = JobStatus.PENDING, age_s: float = 0.0) -> JobRecord:
    when = utcnow() - timedelta(seconds=age_s)
    return JobRecord(
        job_id=job_id,
        status=status,
        backend="billed",
        created_at=when,
        updated_at=when,
        request=TrainingRequest(model="m/x", dataset="d/x"),
    )


def _line(store: JobStore, job_id: str) -> dict[str, Any]:
    [line] = [x for x in store.spending() if x["job_id"] == job_id]
    return line


# ------------------------------------------------------------------------------------------ the store


def test_a_terminal_update_moves_the_job_from_committed_to_spent_once(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.db")
    store.create(_record("vml-a1"))
    store.record_estimate("vml-a1", "billed", 2.0, 5.0)
    store.record_spend("vml-a1", 0.5)
    assert store.month_total(MONTH) == (0.5, 1.5)
    store.update("vml-a1", status=JobStatus.COMPLETED, cost_so_far=1.25)
    assert store.month_total(MONTH) == (1.25, 0.0)
    # Settling again, a late poll, a later update: nothing moves twice.
    store.update("vml-a1", status=JobStatus.COMPLETED, cost_so_far=9.0)
    assert store.settle("vml-a1", 7.0) == 1.25
    store.record_spend("vml-a1", 8.0, final=True)
    assert store.month_total(MONTH) == (1.25, 0.0)
    assert _line(store, "vml-a1")["final_cost"] == 1.25


def test_a_job_that_failed_before_renting_costs_zero(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.db")
    store.create(_record("vml-b1"))
    store.record_estimate("vml-b1", "billed", 3.0, 5.0)
    store.update("vml-b1", status=JobStatus.FAILED, error="no capacity")
    assert store.month_total(MONTH) == (0.0, 0.0)
    assert _line(store, "vml-b1")["final_cost"] == 0.0


def test_a_terminal_jobs_open_line_commits_nothing(tmp_path: Path) -> None:
    """A line left open (written by an older VibeML, or a crash between two writes) is not committed."""
    store = JobStore(tmp_path / "s.db")
    store.create(_record("vml-c1", JobStatus.STOPPED))
    store.create(_record("vml-c2", JobStatus.RUNNING))
    store.record_estimate("vml-c1", "billed", 2.0, 5.0)
    store.record_estimate("vml-c2", "billed", 1.0, 5.0)
    assert store.month_total(MONTH) == (0.0, 1.0)
    assert store.settle_terminal() == 1
    assert _line(store, "vml-c1")["final_cost"] == 0.0 and _line(store, "vml-c2")["final_cost"] is None
    assert store.settle_terminal() == 0
    # The store's SQL (and migration m004) name the terminal states literally: they must be these.
    assert {s.value for s in JobStatus.TERMINAL} == {"completed", "failed", "stopped"}


def test_an_old_database_migrates_and_settles_its_open_lines(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    for version, name, sql in MIGRATIONS[:3]:
        for statement in (s.strip() for s in sql.split(";")):
            if statement:
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01')", (version, name))
    now = utcnow().isoformat()
    for job_id, status, cost in (("vml-f1", "failed", 0.0), ("vml-s1", "stopped", 0.75), ("vml-r1", "running", 0.1)):
        conn.execute(
            "INSERT INTO jobs(job_id, status, backend, request_json, created_at, updated_at, cost_so_far)"
            " VALUES (?, ?, 'vast', ?, ?, ?, ?)",
            (job_id, status, TrainingRequest(model="m/x", dataset="d/x").model_dump_json(), now, now, cost),
        )
        conn.execute(
            "INSERT INTO spending(job_id, backend, month, estimated_cost, accrued_cost, created_at, updated_at)"
            " VALUES (?, 'vast', ?, 2.0, ?, ?, ?)",
            (job_id, MONTH, 0.5 if status == "stopped" else 0.1 if status == "running" else 0.0, now, now),
        )
    conn.commit()
    conn.close()
    store = JobStore(path)
    assert store.schema_version() == len(MIGRATIONS) >= 4
    assert _line(store, "vml-f1")["final_cost"] == 0.0
    assert _line(store, "vml-s1")["final_cost"] == 0.75  # the job's last known cost, above its accrued 0.5
    assert _line(store, "vml-r1")["final_cost"] is None
    assert store.month_total(MONTH) == (0.0 + 0.75 + 0.1, 2.0 - 0.1)


_STATUSES = list(JobStatus)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("spend"), st.integers(0, 2), st.integers(0, 400), st.booleans()),
        st.tuples(st.just("status"), st.integers(0, 2), st.sampled_from(_STATUSES), st.none() | st.integers(0, 400)),
        st.tuples(st.just("settle"), st.integers(0, 2), st.none() | st.integers(0, 400), st.just(False)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(estimates=st.lists(st.integers(0, 300), min_size=3, max_size=3), ops=_OPS)
def test_random_transitions_never_double_count(tmp_path: Path, estimates: list[int], ops: list[Any]) -> None:
    """Costs are whole cents (exact in floats). The model: what each job has accrued, its last known cost,
    its status and its final cost; the ledger must agree after every step."""
    store = JobStore(Path(tempfile.mkdtemp(dir=tmp_path)) / "p.db")
    jobs = [f"vml-h{i}" for i in range(3)]
    model = []
    for job_id, est in zip(jobs, estimates, strict=True):
        store.create(_record(job_id))
        store.record_estimate(job_id, "billed", est / 100, None)
        model.append({"est": est, "accrued": 0, "cost": 0, "status": JobStatus.PENDING, "final": None})
    for op, j, a, b in ops:
        m = model[j]
        if op == "spend":
            if m["final"] is None:
                m["accrued"] = max(m["accrued"], a)
                if b:
                    m["final"] = m["accrued"]
            store.record_spend(jobs[j], a / 100, final=b)
        elif op == "status":
            if b is not None:
                m["cost"] = b
            if not m["status"].is_terminal:
                m["status"] = a
            if m["status"].is_terminal and m["final"] is None:
                m["accrued"] = m["final"] = max(m["accrued"], m["cost"])
            store.update(jobs[j], status=a, **({} if b is None else {"cost_so_far": b / 100}))
        else:
            if m["final"] is None:
                m["accrued"] = m["final"] = max(m["accrued"], a or 0)
            store.settle(jobs[j], None if a is None else a / 100)
        spent, committed = store.month_total(MONTH)
        want_spent = sum(x["final"] if x["final"] is not None else x["accrued"] for x in model)
        want_committed = sum(
            max(0, x["est"] - x["accrued"]) for x in model if x["final"] is None and not x["status"].is_terminal
        )
        assert round(spent * 100) == want_spent and round(committed * 100) == want_committed
        for job_id, x in zip(jobs, model, strict=True):
            if x["status"].is_terminal:  # nothing stays committed after a job is over
                assert _line(store, job_id)["final_cost"] is not None
    store.close()


# ---------------------------------------------------------------------------------------- the service


class BilledBackend(LocalBackend):
    """A paid backend whose provider is a file: ``bill.json`` in the job folder says the job's status and
    what it has billed. ``mode`` makes the launch fail before renting or after renting."""

    name: ClassVar[str] = "billed"
    capabilities: ClassVar[Capabilities] = LocalBackend.capabilities.model_copy(
        update={"free": False, "gpu_selection": Capability(supported=True)}
    )
    clouds: ClassVar[tuple[str, ...] | None] = ("vast",)
    mode: ClassVar[str] = "ok"

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> LocalHandle:
        if self.mode == "fail_before":
            raise BackendError("no machine could be rented", {"job_id": job_id})
        handle = _handle(job_id, job_dir)
        write_handle_file(handle)
        if self.mode == "fail_after":
            _bill(job_dir, "failed", 0.37)  # rented, never started, destroyed: billed 37 cents
            raise BackendError("the machine did not start (it was destroyed)", {"job_id": job_id})
        _bill(job_dir, "running", 0.0)
        return handle

    def status(self, handle: LocalHandle) -> JobProgress:
        bill = json.loads((Path(handle.job_dir) / BILL).read_text(encoding="utf-8"))
        return JobProgress(status=JobStatus(bill["status"]), cost_so_far=bill["cost"])

    def stop(self, handle: LocalHandle, grace_seconds: float = 30.0) -> None:
        pass  # the provider does not confirm: the service's stop ends the job itself


def _handle(job_id: str, job_dir: Path) -> LocalHandle:
    return LocalHandle(
        job_id=job_id,
        backend_job_id="1",
        job_dir=str(job_dir),
        data=LocalHandleData(
            pid=1, pgid=1, events_path="e.jsonl", log_path="t.log", output_dir=str(job_dir), argv=("x",)
        ),
    )


def _bill(job_dir: Path, status: str, cost: float) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / BILL).write_text(json.dumps({"status": status, "cost": cost}), encoding="utf-8")


@pytest.fixture
def svc(vibeml_env: Path) -> VibeML:
    BilledBackend.mode = "ok"
    settings = Settings.from_env()
    registry = default_registry(settings)
    registry.register("billed", BilledBackend)
    return VibeML(settings, backends=registry)


def _req(demo_assets_dir: Path) -> TrainingRequest:
    data = next(demo_assets_dir.rglob("*.jsonl"))
    model = str(next(demo_assets_dir.rglob("config.json")).parent)
    return build_request(model=model, dataset=str(data), backend="billed", max_steps=200, max_cost=2.0)


@pytest.mark.needs_train
def test_a_launch_that_fails_before_renting_commits_nothing(svc: VibeML, demo_assets_dir: Path) -> None:
    BilledBackend.mode = "fail_before"
    with pytest.raises(BackendError):
        svc.launch(_req(demo_assets_dir))
    [record] = svc.store.list_jobs()
    assert record.status is JobStatus.FAILED
    assert _line(svc.store, record.job_id)["final_cost"] == 0.0
    budget = svc.budget_status()
    assert (budget.spent, budget.committed) == (0.0, 0.0)


@pytest.mark.needs_train
def test_a_launch_that_fails_after_renting_records_the_bill(svc: VibeML, demo_assets_dir: Path) -> None:
    BilledBackend.mode = "fail_after"
    with pytest.raises(BackendError, match="did not start"):
        svc.launch(_req(demo_assets_dir))
    [record] = svc.store.list_jobs()
    assert record.status is JobStatus.FAILED and record.handle is not None  # what was rented is on record
    assert _line(svc.store, record.job_id)["final_cost"] == 0.37
    report = svc.spending()
    assert (report.budget.spent, report.budget.committed, report.total) == (0.37, 0.0, 0.37)


@pytest.mark.needs_train
def test_a_completed_job_moves_from_committed_to_spent_once(svc: VibeML, demo_assets_dir: Path) -> None:
    record = svc.launch(_req(demo_assets_dir))
    estimate = _line(svc.store, record.job_id)["estimated_cost"]
    assert estimate > 0 and svc.budget_status().committed == round(estimate, 4)
    job_dir = svc.job_dir(record.job_id)
    _bill(job_dir, "running", 0.005)
    svc.get_status(record.job_id)
    assert svc.store.month_total(MONTH) == pytest.approx((0.005, estimate - 0.005))
    _bill(job_dir, "completed", 0.2)  # above the estimate: the bill is what counts
    for _ in range(3):  # every later look settles nothing again
        svc.get_status(record.job_id)
        svc.list_jobs()
        svc.spending()
    assert svc.store.month_total(MONTH) == (0.2, 0.0)
    assert _line(svc.store, record.job_id)["final_cost"] == 0.2


@pytest.mark.needs_train
def test_a_stopped_job_moves_from_committed_to_spent_once(svc: VibeML, demo_assets_dir: Path) -> None:
    record = svc.launch(_req(demo_assets_dir))
    _bill(svc.job_dir(record.job_id), "running", 0.005)
    stopped = svc.stop(record.job_id)
    assert stopped.status is JobStatus.STOPPED
    svc.stop(record.job_id)
    assert svc.store.month_total(MONTH) == (0.005, 0.0)
    assert _line(svc.store, record.job_id)["final_cost"] == 0.005


def _half_finished(svc: VibeML, job_id: str, estimate: float = 3.0, launcher: dict[str, Any] | None = None) -> None:
    svc.store.create(_record(job_id, age_s=600))
    svc.store.record_estimate(job_id, "billed", estimate, 5.0)
    if launcher is not None:
        svc.store.add_event(job_id, "launching", launcher)


def test_a_crashed_launchers_row_is_settled_by_the_next_spending(svc: VibeML) -> None:
    _half_finished(svc, "vml-dead0001")  # a launcher killed before it rented anything
    assert svc.store.month_total(MONTH) == (0.0, 3.0)
    report = svc.spending()
    assert (report.budget.spent, report.budget.committed) == (0.0, 0.0)
    record = svc.store.get("vml-dead0001")
    assert record.status is JobStatus.FAILED and "did not complete" in (record.error or "")
    assert _line(svc.store, "vml-dead0001")["final_cost"] == 0.0


def test_a_crashed_launcher_that_rented_is_settled_at_the_bill(svc: VibeML) -> None:
    """The launcher left a handle file (a resource was rented): the backend's status says the bill."""
    _half_finished(svc, "vml-dead0002")
    job_dir = svc.job_dir("vml-dead0002")
    job_dir.mkdir(parents=True)
    write_handle_file(_handle("vml-dead0002", job_dir))
    _bill(job_dir, "failed", 0.42)
    [record] = svc.list_jobs(refresh=True)
    assert record.status is JobStatus.FAILED
    assert svc.store.month_total(MONTH) == (0.42, 0.0)
    assert _line(svc.store, "vml-dead0002")["final_cost"] == 0.42


def test_a_live_launcher_keeps_its_row_committed(svc: VibeML) -> None:
    """Slow is not dead: a row whose launcher still runs stays committed; once it is gone, it settles."""
    _half_finished(svc, "vml-live0001", launcher={"pid": os.getpid(), "start": None})
    assert svc.budget_status().committed == 3.0
    assert svc.store.get("vml-live0001").status is JobStatus.PENDING
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _half_finished(svc, "vml-gone0001", estimate=1.0, launcher={"pid": int(gone.stdout), "start": None})
    assert svc.budget_status().committed == 3.0
    assert svc.store.get("vml-gone0001").status is JobStatus.FAILED
