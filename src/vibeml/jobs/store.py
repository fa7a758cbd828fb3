"""The jobs store: SQLite in WAL mode. The only module in VibeML that speaks SQL.

Every write is one short ``BEGIN IMMEDIATE`` transaction, so several CLI processes, an MCP server and
trainers' watchers can share one database without corrupting it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vibeml.exceptions import ConfigurationError, JobNotFoundError, ValidationError
from vibeml.jobs.migrations import MIGRATIONS
from vibeml.models import CostEstimate, JobProgress, JobRecord, JobStatus, TrainingRequest, load_handle

__all__ = ["MAX_LIST_LIMIT", "JobStore", "check_job_id", "check_limit", "utcnow"]

_BUSY_TIMEOUT_MS = 30_000
#: Job ids are "vml-" and 8 hex digits; anything else that reaches SQL is letters, digits, '.', '_', '-'.
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_LIST_LIMIT = 100_000
_TERMINAL_JOBS = "SELECT job_id FROM jobs WHERE status IN ('completed', 'failed', 'stopped')"
_OPEN_TERMINAL_SQL = f"SELECT 1 FROM spending WHERE final_cost IS NULL AND job_id IN ({_TERMINAL_JOBS}) LIMIT 1"
#: Close the open ledger lines of terminal jobs (the same rule as migration m004).
_SETTLE_TERMINAL_SQL = (
    "UPDATE spending SET final_cost = MAX(accrued_cost, COALESCE((SELECT cost_so_far FROM jobs"
    " WHERE jobs.job_id = spending.job_id), 0)), updated_at = ?"
    f" WHERE final_cost IS NULL AND job_id IN ({_TERMINAL_JOBS})"
)


def check_job_id(job_id: object) -> str:
    """``job_id`` if it can name a job (an id or a prefix of one), before it reaches SQL.

    Raises:
        JobNotFoundError: Not a string, empty, longer than 64 characters, or holding other characters.
    """
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        shown = repr(job_id)
        if isinstance(job_id, str) and len(job_id) > 80:
            shown = f"{job_id[:80]!r}… ({len(job_id)} characters)"
        raise JobNotFoundError(
            f"{shown} is not a job id",
            {"job_id": shown},
            "Job ids look like 'vml-0b2fcda3' (a unique prefix such as 'vml-0b' works too); `vibeml jobs` lists them.",
        )
    return job_id


def check_limit(limit: object, what: str = "limit", most: int = MAX_LIST_LIMIT) -> int:
    """A row limit: a whole number from 1 to ``most`` (``MAX_LIST_LIMIT`` by default).

    Raises:
        ValidationError: Anything else (a bool, a string, 0, a negative or a huge number).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise ValidationError(
            f"{what} must be a whole number from 1 to {most:,}, not {str(limit)[:40]!r}",
            {what: str(limit)[:40]},
            f"Give e.g. {what}=50.",
        )
    return limit


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode. SQLite answers "database is locked" at once, without its busy handler,
    when another connection holds a lock during the switch (several processes or threads opening a new
    database together), so the switch is retried within the busy timeout."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class JobStore:
    """Job history and job events, in one SQLite file.

    Args:
        path: The database file (created with its parent directory when missing).
    """

    def __init__(self, path: str | Path) -> None:
        from vibeml.safe_paths import make_private_dir

        self.path = Path(path)
        try:
            make_private_dir(self.path.parent)
            self.path.touch(mode=0o600, exist_ok=True)
            if os.name == "posix":
                os.chmod(self.path, 0o600)  # job history names users' data: never world-readable
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the jobs database {self.path}: {exc.strerror or exc}",
                {"path": str(self.path)},
                "Check the folder's permissions, or point VIBEML_HOME at a writable folder.",
            ) from exc
        self._local = threading.local()
        self._migrate()

    # ----------------------------------------------------------------------------------- plumbing

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                _switch_to_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as exc:
                raise ConfigurationError(
                    f"the jobs database {self.path} cannot be opened: {exc}",
                    {"path": str(self.path)},
                    "Move the file aside (it is not deleted automatically) and run the command again.",
                ) from exc
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            newest = max((v for v, _, _ in MIGRATIONS), default=0)
            if applied and max(applied) > newest:
                raise ConfigurationError(
                    f"the jobs database {self.path} was written by a newer VibeML (schema {max(applied)})",
                    {"path": str(self.path), "schema": max(applied), "supported": newest},
                    "Upgrade VibeML (`pip install -U vibeml`).",
                )
            for version, name, sql in MIGRATIONS:
                if version in applied:
                    continue
                for statement in (s.strip() for s in sql.split(";")):
                    if statement:
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, _ts(utcnow())),
                )

    def schema_version(self) -> int:
        row = self._conn().execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------------------------- rows

    def _row_to_record(self, row: sqlite3.Row) -> JobRecord:
        def parse(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return JobRecord(
            job_id=row["job_id"],
            name=row["name"],
            status=JobStatus(row["status"]),
            backend=row["backend"],
            request=TrainingRequest.model_validate_json(row["request_json"]),
            handle=load_handle(row["handle_json"], where=str(self.path)) if row["handle_json"] else None,
            created_at=parse(row["created_at"]) or utcnow(),
            updated_at=parse(row["updated_at"]) or utcnow(),
            started_at=parse(row["started_at"]),
            finished_at=parse(row["finished_at"]),
            error=row["error"],
            output_dir=row["output_dir"],
            progress=JobProgress.model_validate_json(row["progress_json"]) if row["progress_json"] else None,
            estimate=CostEstimate.model_validate_json(row["estimate_json"]) if row["estimate_json"] else None,
            cost_so_far=row["cost_so_far"],
            stop_requested=bool(row["stop_requested"]),
        )

    def create(self, record: JobRecord) -> JobRecord:
        """Insert a new job (its id must be new)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs(job_id, name, status, backend, request_json, handle_json, created_at,"
                " updated_at, started_at, finished_at, error, output_dir, progress_json, estimate_json,"
                " cost_so_far, stop_requested) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.job_id,
                    record.name,
                    record.status.value,
                    record.backend,
                    record.request.model_dump_json(),
                    record.handle.model_dump_json() if record.handle else None,
                    _ts(record.created_at),
                    _ts(record.updated_at),
                    _ts(record.started_at),
                    _ts(record.finished_at),
                    record.error,
                    record.output_dir,
                    record.progress.model_dump_json() if record.progress else None,
                    record.estimate.model_dump_json() if record.estimate else None,
                    record.cost_so_far,
                    int(record.stop_requested),
                ),
            )
            self._add_event(conn, record.job_id, "created", {"status": record.status.value})
        return record

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        row = self._conn().execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r}", {"job_id": job_id})
        return self._row_to_record(row)

    def find(self, prefix: str) -> JobRecord:
        """Get a job by its id or a unique prefix of it."""
        check_job_id(prefix)
        try:
            return self.get(prefix)
        except JobNotFoundError:
            pass
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = (
            self._conn()
            .execute("SELECT * FROM jobs WHERE job_id LIKE ? ESCAPE '\\' LIMIT 3", (escaped + "%",))
            .fetchall()
        )
        if len(rows) == 1:
            return self._row_to_record(rows[0])
        if not rows:
            raise JobNotFoundError(f"no job {prefix!r}", {"job_id": prefix})
        raise JobNotFoundError(
            f"{prefix!r} matches several jobs",
            {"job_id": prefix, "matches": [r["job_id"] for r in rows]},
            "Give more of the job id.",
        )

    def list_jobs(self, limit: int = 50, statuses: set[JobStatus] | None = None) -> list[JobRecord]:
        """Newest first (``limit``: 1 to ``MAX_LIST_LIMIT``)."""
        check_limit(limit)
        sql = "SELECT * FROM jobs"
        args: list[Any] = []
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args.extend(s.value for s in statuses)
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        args.append(limit)
        return [self._row_to_record(r) for r in self._conn().execute(sql, args).fetchall()]

    _UPDATABLE = frozenset(
        {
            "status",
            "handle",
            "started_at",
            "finished_at",
            "error",
            "output_dir",
            "progress",
            "estimate",
            "cost_so_far",
            "stop_requested",
            "name",
        }
    )

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        """Change some fields; a job in a terminal state keeps its status."""
        unknown = set(fields) - self._UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        columns: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "status":
                columns["status"] = JobStatus(value).value
            elif key in ("handle", "progress", "estimate"):
                columns[f"{key}_json"] = value.model_dump_json() if value is not None else None
            elif key in ("started_at", "finished_at"):
                columns[key] = _ts(value)
            elif key == "stop_requested":
                columns[key] = int(bool(value))
            else:
                columns[key] = value
        with self._tx() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r}", {"job_id": job_id})
            old = JobStatus(row["status"])
            if old.is_terminal and "status" in columns and columns["status"] != old.value:
                columns.pop("status")  # terminal is final: never resurrect a finished job
            columns["updated_at"] = _ts(utcnow())
            assignments = ", ".join(f"{c} = ?" for c in columns)
            conn.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*columns.values(), job_id))
            new_status = columns.get("status")
            if new_status is not None and new_status != old.value:
                data = {"from": old.value, "to": new_status}
                if fields.get("error"):
                    data["error"] = fields["error"]
                self._add_event(conn, job_id, "status", data)
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if JobStatus(row["status"]).is_terminal:  # every terminal transition settles, in the same write
                self._settle(conn, job_id, float(row["cost_so_far"] or 0.0))
        return self._row_to_record(row)

    # --------------------------------------------------------------------------------- spending

    def record_estimate(
        self, job_id: str, backend: str, estimated_cost: float, max_cost: float | None, when: datetime | None = None
    ) -> None:
        """Open the job's ledger line (its month is the month it was launched, UTC)."""
        now = when or utcnow()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO spending(job_id, backend, month, estimated_cost, accrued_cost, max_cost, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)"
                " ON CONFLICT(job_id) DO UPDATE SET estimated_cost = excluded.estimated_cost,"
                " max_cost = excluded.max_cost, updated_at = excluded.updated_at",
                (job_id, backend, now.strftime("%Y-%m"), estimated_cost, max_cost, _ts(now), _ts(now)),
            )

    def record_spend(self, job_id: str, accrued_cost: float, final: bool = False) -> None:
        """Record what the backend reports; accrued cost never goes down, a final cost is final."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE spending SET accrued_cost = MAX(accrued_cost, ?), updated_at = ?"
                " WHERE job_id = ? AND final_cost IS NULL",
                (accrued_cost, _ts(utcnow()), job_id),
            )
            if final:
                conn.execute(
                    "UPDATE spending SET final_cost = accrued_cost WHERE job_id = ? AND final_cost IS NULL",
                    (job_id,),
                )

    @staticmethod
    def _settle(conn: sqlite3.Connection, job_id: str, cost: float | None) -> None:
        conn.execute(
            "UPDATE spending SET accrued_cost = MAX(accrued_cost, ?1), final_cost = MAX(accrued_cost, ?1),"
            " updated_at = ?2 WHERE job_id = ?3 AND final_cost IS NULL",
            (cost or 0.0, _ts(utcnow()), job_id),
        )

    def settle(self, job_id: str, cost: float | None = None) -> float | None:
        """Close a job's ledger line: its final cost is ``cost`` (what the backend billed, when known) or
        else what it had accrued (0 when nothing was rented), never below the accrued cost. Idempotent: a
        settled line never changes again. Returns the final cost (None: the job has no ledger line).

        ``update`` does the same (in its own transaction) whenever a job is terminal, so a job that ends by any
        path stops being committed exactly once."""
        with self._tx() as conn:
            self._settle(conn, job_id, cost)
            row = conn.execute("SELECT final_cost FROM spending WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else float(row[0])

    def settle_terminal(self) -> int:
        """Settle every open ledger line whose job is terminal (a line left open by an older VibeML or a
        crash between the two writes): its final cost is the larger of its accrued cost and the job's last
        known cost. Returns how many lines it closed."""
        if self._conn().execute(_OPEN_TERMINAL_SQL).fetchone() is None:
            return 0  # the usual case, and no write lock for it
        with self._tx() as conn:
            cur = conn.execute(_SETTLE_TERMINAL_SQL, (_ts(utcnow()),))
            return int(cur.rowcount or 0)

    def spending(self, month: str | None = None) -> list[dict[str, Any]]:
        """Ledger lines (newest first), optionally for one month ('YYYY-MM')."""
        sql = "SELECT * FROM spending"
        args: tuple[Any, ...] = ()
        if month:
            sql += " WHERE month = ?"
            args = (month,)
        rows = self._conn().execute(sql + " ORDER BY created_at DESC", args).fetchall()
        return [dict(r) for r in rows]

    def month_total(self, month: str) -> tuple[float, float]:
        """(spent, committed) for a month: final or accrued costs, plus what live (non-terminal) jobs may
        still spend (their estimate above what they have accrued). A terminal job commits nothing."""
        terminal = sorted(s.value for s in JobStatus.TERMINAL)
        row = (
            self._conn()
            .execute(
                "SELECT COALESCE(SUM(COALESCE(s.final_cost, s.accrued_cost)), 0),"
                " COALESCE(SUM(CASE WHEN s.final_cost IS NULL AND s.estimated_cost > s.accrued_cost"
                f" AND j.status IS NOT NULL AND j.status NOT IN ({','.join('?' * len(terminal))})"
                " THEN s.estimated_cost - s.accrued_cost ELSE 0 END), 0)"
                " FROM spending s LEFT JOIN jobs j ON j.job_id = s.job_id WHERE s.month = ?",
                (*terminal, month),
            )
            .fetchone()
        )
        return float(row[0]), float(row[1])

    # -------------------------------------------------------------------------------- ownership

    def installation_id(self) -> str:
        """This installation's id (12 hex digits), generated once per database (so once per VIBEML_HOME)."""
        row = self._conn().execute("SELECT value FROM installation WHERE key = 'install_id'").fetchone()
        if row is not None:
            return str(row[0])
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO installation(key, value) VALUES ('install_id', ?)", (secrets.token_hex(6),)
            )
            row = conn.execute("SELECT value FROM installation WHERE key = 'install_id'").fetchone()
        return str(row[0])

    def record_intent(self, backend: str, job_id: str, label: str, offer_id: str | int | None = None) -> int:
        """Record, before a paid create, that this installation is about to rent ``label`` for ``job_id``;
        returns the intent's id (for :meth:`record_intent_resource`)."""
        now = _ts(utcnow())
        install = self.installation_id()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO launch_intents(install_id, backend, job_id, label, offer_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (install, backend, job_id, label, None if offer_id is None else str(offer_id), now, now),
            )
            return int(cur.lastrowid or 0)

    def record_intent_resource(self, intent_id: int, resource_id: str | int) -> None:
        """The create behind an intent answered with this resource (instance) id."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE launch_intents SET resource_id = ?, updated_at = ? WHERE id = ?",
                (str(resource_id), _ts(utcnow()), intent_id),
            )

    def intents(self, backend: str) -> list[dict[str, Any]]:
        """This installation's recorded create intents on ``backend``, oldest first."""
        rows = self._conn().execute(
            "SELECT * FROM launch_intents WHERE backend = ? AND install_id = ? ORDER BY id",
            (backend, self.installation_id()),
        )
        return [dict(r) for r in rows]

    def open_intents(self, backend: str) -> list[dict[str, Any]]:
        """This installation's intents on ``backend`` not yet settled (a late-landing create may still
        appear under their label), oldest first."""
        rows = self._conn().execute(
            "SELECT * FROM launch_intents WHERE backend = ? AND install_id = ? AND closed_at IS NULL ORDER BY id",
            (backend, self.installation_id()),
        )
        return [dict(r) for r in rows]

    def open_intent_backends(self) -> list[str]:
        """The backends on which this installation has open intents (cheap: no backend is built)."""
        rows = self._conn().execute(
            "SELECT DISTINCT backend FROM launch_intents WHERE install_id = ? AND closed_at IS NULL ORDER BY backend",
            (self.installation_id(),),
        )
        return [str(r[0]) for r in rows]

    def close_intents(self, backend: str, label: str, why: str) -> int:
        """Settle every open intent for ``label``: nothing more is expected under it. Returns how many."""
        now = _ts(utcnow())
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE launch_intents SET closed_at = ?, closed_why = ?, updated_at = ?"
                " WHERE backend = ? AND label = ? AND install_id = ? AND closed_at IS NULL",
                (now, why, now, backend, label, self.installation_id()),
            )
            return int(cur.rowcount or 0)

    def record_stray(self, backend: str, job_id: str, label: str, resource_id: str | int, destroyed: bool) -> None:
        """An instance under an intent's label that the job does not use (a late-landing or duplicate
        create): found, and destroyed (``destroyed``) or not yet. Also a job event when the job exists."""
        now = _ts(utcnow())
        rid = str(resource_id)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO launch_strays(install_id, backend, job_id, label, resource_id, found_at, destroyed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(backend, resource_id) DO UPDATE SET"
                " destroyed_at = COALESCE(launch_strays.destroyed_at, excluded.destroyed_at)",
                (self.installation_id(), backend, job_id, label, rid, now, now if destroyed else None),
            )
            if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is not None:
                kind = "stray_destroyed" if destroyed else "stray_found"
                self._add_event(conn, job_id, kind, {"backend": backend, "resource_id": rid, "label": label})

    def strays(self, backend: str, job_id: str | None = None) -> list[dict[str, Any]]:
        """Instances the sweep found under this installation's labels that no job used, oldest first."""
        sql = "SELECT * FROM launch_strays WHERE backend = ? AND install_id = ?"
        args: list[Any] = [backend, self.installation_id()]
        if job_id is not None:
            sql += " AND job_id = ?"
            args.append(job_id)
        return [dict(r) for r in self._conn().execute(sql + " ORDER BY id", args)]

    # ----------------------------------------------------------------------------------- events

    @staticmethod
    def _add_event(conn: sqlite3.Connection, job_id: str, kind: str, data: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO job_events(job_id, time, kind, data_json) VALUES (?, ?, ?, ?)",
            (job_id, _ts(utcnow()), kind, json.dumps(data, default=str)),
        )

    def add_event(self, job_id: str, kind: str, data: dict[str, Any] | None = None) -> None:
        with self._tx() as conn:
            self._add_event(conn, job_id, kind, data or {})

    def events(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT time, kind, data_json FROM job_events WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [{"time": r["time"], "kind": r["kind"], **json.loads(r["data_json"])} for r in rows]
