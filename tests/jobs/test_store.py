from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from vibeml.exceptions import ConfigurationError, JobNotFoundError
from vibeml.jobs.migrations import MIGRATIONS
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import JobProgress, JobRecord, JobStatus, TrainingRequest


def _record(job_id: str, offset_s: int = 0) -> JobRecord:
    now = utcnow() + timedelta(seconds=offset_s)
    return JobRecord(
        job_id=job_id,
        status=JobStatus.PENDING,
        backend="local",
        request=TrainingRequest(model="m/x", dataset="d/x", max_steps=3),
        created_at=now,
        updated_at=now,
    )


def test_migrations_apply_once_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = JobStore(db)
    assert store.schema_version() == MIGRATIONS[-1][0]
    JobStore(db)  # a second open applies nothing twice
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_a_database_from_before_ownership_keeps_working(tmp_path: Path) -> None:
    """A database with only the jobs and spending tables (no installation id, no intents) opens, keeps its
    jobs and ledger, and gains the ownership tables."""
    db = tmp_path / "old.db"
    old = [m for m in MIGRATIONS if m[1] in ("m001_jobs", "m002_spending")]
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for version, name, sql in old:
        conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", (version, name))
    conn.commit()
    conn.close()
    legacy = JobStore(db)
    legacy.create(_record("vml-01d00001"))
    legacy.record_estimate("vml-01d00001", "local", 0.5, 1.0)
    legacy.close()
    conn = sqlite3.connect(db)  # written by the old schema: drop the new tables' traces to be sure
    conn.execute("DELETE FROM schema_migrations WHERE name NOT IN ('m001_jobs', 'm002_spending')")
    conn.execute("DROP TABLE launch_intents")
    conn.execute("DROP TABLE installation")
    conn.execute("DROP TABLE IF EXISTS launch_strays")
    conn.commit()
    conn.close()

    store = JobStore(db)
    assert store.schema_version() == MIGRATIONS[-1][0]
    assert store.get("vml-01d00001").status is JobStatus.PENDING
    assert [r["job_id"] for r in store.spending()] == ["vml-01d00001"]
    install = store.installation_id()
    assert len(install) == 12 and int(install, 16) >= 0
    assert JobStore(db).installation_id() == install  # generated once, kept
    assert JobStore(tmp_path / "other.db").installation_id() != install  # another home, another id
    intent = store.record_intent("vast", "vml-01d00001", f"vibeml-{install}-vml-01d00001", 42)
    store.record_intent_resource(intent, 777)
    (row,) = store.intents("vast")
    assert (row["job_id"], row["offer_id"], row["resource_id"]) == ("vml-01d00001", "42", "777")
    assert row["install_id"] == install
    assert store.intents("skypilot") == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    JobStore(db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
    conn.commit()
    with pytest.raises(ConfigurationError, match="newer VibeML"):
        JobStore(db)


def test_corrupt_database_is_a_clear_error_and_kept(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigurationError) as info:
        JobStore(db)
    assert "cannot be opened" in info.value.message
    assert db.read_bytes().startswith(b"this is not a database")


def test_crud_prefix_and_terminal_is_final(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.db")
    store.create(_record("vml-aaaa1111"))
    store.create(_record("vml-aaab2222", 1))
    assert store.get("vml-aaaa1111").request.hyperparameters.max_steps == 3
    assert store.find("vml-aaab").job_id == "vml-aaab2222"
    with pytest.raises(JobNotFoundError, match="several"):
        store.find("vml-aa")
    with pytest.raises(JobNotFoundError):
        store.find("nope")
    with pytest.raises(JobNotFoundError):
        store.find("vml-a%")  # LIKE wildcards are escaped
    rec = store.update("vml-aaaa1111", status=JobStatus.RUNNING, progress=JobProgress(status="running", step=2))
    assert rec.progress is not None and rec.progress.step == 2
    store.update("vml-aaaa1111", status=JobStatus.COMPLETED, finished_at=utcnow())
    again = store.update("vml-aaaa1111", status=JobStatus.RUNNING)
    assert again.status is JobStatus.COMPLETED
    kinds = [(e["kind"], e.get("to")) for e in store.events("vml-aaaa1111")]
    assert kinds == [("created", None), ("status", "running"), ("status", "completed")]
    assert [r.job_id for r in store.list_jobs()] == ["vml-aaab2222", "vml-aaaa1111"]
    assert [r.job_id for r in store.list_jobs(statuses={JobStatus.COMPLETED})] == ["vml-aaaa1111"]


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.db")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            store.create(_record(f"vml-t{i:04d}"))
            for step in range(5):
                store.update(f"vml-t{i:04d}", progress=JobProgress(status="running", step=step))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.list_jobs(limit=100)) == 16


def test_opening_waits_for_another_connections_lock(tmp_path: Path) -> None:
    # SQLite refuses the switch to WAL with "database is locked", without waiting, while another connection
    # holds a lock: a server whose first tool calls arrived together used to fail one of them.
    db = tmp_path / "new.db"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t(x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    releaser = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    releaser.start()
    try:
        store = JobStore(db)  # waits for the lock instead of failing
        assert store.list_jobs(limit=5) == []
        assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        releaser.join()
        other.close()


def _proc_work(db: str, prefix: str) -> None:
    store = JobStore(db)
    for i in range(20):
        store.create(_record(f"{prefix}{i:03d}"))
        store.update(f"{prefix}{i:03d}", status=JobStatus.RUNNING)


def test_processes_share_one_store(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_proc_work, args=(db, f"vml-p{n}-")) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = JobStore(db)
    records = store.list_jobs(limit=500)
    assert len(records) == 80
    assert all(r.status is JobStatus.RUNNING for r in records)
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_spending_ledger(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.db")
    for jid in ("vml-s1", "vml-s2"):
        store.create(_record(jid))
    month = utcnow().strftime("%Y-%m")
    store.record_estimate("vml-s1", "vast", 2.0, 5.0)
    store.record_estimate("vml-s2", "vast", 1.0, None)
    store.record_spend("vml-s1", 0.5)
    store.record_spend("vml-s1", 0.25)  # never goes down
    assert store.month_total(month) == (0.5, 1.5 + 1.0)
    store.record_spend("vml-s1", 1.25, final=True)
    store.record_spend("vml-s1", 9.0)  # a final cost is final
    spent, committed = store.month_total(month)
    assert (spent, committed) == (1.25, 1.0)
    assert {r["job_id"] for r in store.spending(month)} == {"vml-s1", "vml-s2"}
    assert store.month_total("1999-01") == (0.0, 0.0)
