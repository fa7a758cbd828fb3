from __future__ import annotations

import json

from typer.testing import CliRunner

from vibeml.cli.main import app
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import JobRecord, JobStatus, TrainingRequest
from vibeml.settings import Settings

runner = CliRunner()


def test_budget_set_show_and_invalid_changes_nothing() -> None:
    res = runner.invoke(app, ["budget", "set", "--monthly", "50", "--per-job", "5", "--warn-at", "0.9", "--json"])
    assert res.exit_code == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["monthly_budget"] == 50 and shown["max_cost_per_job"] == 5 and shown["remaining"] == 50
    bad = runner.invoke(app, ["budget", "set", "--per-job", "80"])  # above the monthly budget
    assert bad.exit_code == 2 and "Nothing was changed" in bad.stderr
    again = json.loads(runner.invoke(app, ["budget", "show", "--json"]).stdout)
    assert again["max_cost_per_job"] == 5


def test_spending_lists_the_ledger() -> None:
    store = JobStore(Settings.from_env().db_path)
    now = utcnow()
    store.create(
        JobRecord(
            job_id="vml-led1",
            status=JobStatus.COMPLETED,
            backend="vast",
            created_at=now,
            updated_at=now,
            request=TrainingRequest(model="m/x", dataset="d/x"),
        )
    )
    store.record_estimate("vml-led1", "vast", 1.5, 3.0)
    store.record_spend("vml-led1", 1.25, final=True)
    res = runner.invoke(app, ["spending", "--json"])
    report = json.loads(res.stdout)
    [line] = report["ledger"]
    assert line["final_cost"] == 1.25 and line["estimated_cost"] == 1.5
    assert report["total"] == 1.25 and report["budget"]["spent"] == 1.25
    table = runner.invoke(app, ["spending"])
    assert "vml-led1" in table.stdout and "total: $1.2500" in table.stdout
    assert runner.invoke(app, ["spending", "--month", "nov"]).exit_code == 2
    shown = json.loads(runner.invoke(app, ["budget", "show", "--json"]).stdout)
    assert shown["spent"] == 1.25
