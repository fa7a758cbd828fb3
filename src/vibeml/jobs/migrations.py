"""Forward-only schema migrations for the jobs store. Append new ones; never edit an applied one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "m001_jobs",
        """
        CREATE TABLE jobs (
            job_id          TEXT PRIMARY KEY,
            name            TEXT,
            status          TEXT NOT NULL,
            backend         TEXT NOT NULL,
            request_json    TEXT NOT NULL,
            handle_json     TEXT,
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL,
            started_at      TEXT,
            finished_at     TEXT,
            error           TEXT,
            output_dir      TEXT,
            progress_json   TEXT,
            estimate_json   TEXT,
            cost_so_far     REAL NOT NULL DEFAULT 0,
            stop_requested  INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_created ON jobs(created_at);
        CREATE INDEX jobs_status ON jobs(status);
        CREATE TABLE job_events (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id    TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
            time      TEXT NOT NULL,
            kind      TEXT NOT NULL,
            data_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX job_events_job ON job_events(job_id, id);
        """,
    ),
    (
        2,
        "m002_spending",
        """
        CREATE TABLE spending (
            job_id          TEXT PRIMARY KEY REFERENCES jobs(job_id) ON DELETE CASCADE,
            backend         TEXT NOT NULL,
            month           TEXT NOT NULL,
            estimated_cost  REAL NOT NULL DEFAULT 0,
            accrued_cost    REAL NOT NULL DEFAULT 0,
            final_cost      REAL,
            max_cost        REAL,
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL
        );
        CREATE INDEX spending_month ON spending(month)
        """,
    ),
    (
        3,
        "m003_ownership",
        """
        CREATE TABLE installation (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE launch_intents (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            install_id  TEXT NOT NULL,
            backend     TEXT NOT NULL,
            job_id      TEXT NOT NULL,
            label       TEXT NOT NULL,
            offer_id    TEXT,
            resource_id TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        );
        CREATE INDEX launch_intents_label ON launch_intents(backend, label)
        """,
    ),
    (
        4,
        "m004_settle_terminal",
        # Older VibeMLs left failed launches and some stopped jobs' ledger lines open (their estimate stayed
        # "committed" for ever): close every open line of a terminal job at its accrued or last known cost.
        """
        UPDATE spending SET final_cost = MAX(accrued_cost, COALESCE((SELECT cost_so_far FROM jobs
            WHERE jobs.job_id = spending.job_id), 0))
        WHERE final_cost IS NULL
          AND job_id IN (SELECT job_id FROM jobs WHERE status IN ('completed', 'failed', 'stopped'))
        """,
    ),
    (
        5,
        "m005_intent_sweep",
        """
        ALTER TABLE launch_intents ADD COLUMN closed_at TEXT;
        ALTER TABLE launch_intents ADD COLUMN closed_why TEXT;
        CREATE TABLE launch_strays (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            install_id   TEXT NOT NULL,
            backend      TEXT NOT NULL,
            job_id       TEXT NOT NULL,
            label        TEXT NOT NULL,
            resource_id  TEXT NOT NULL,
            found_at     TEXT NOT NULL,
            destroyed_at TEXT,
            UNIQUE(backend, resource_id)
        );
        CREATE INDEX launch_intents_open ON launch_intents(backend, closed_at)
        """,
    ),
]
