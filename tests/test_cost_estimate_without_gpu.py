"""``CostEstimate`` as the API reference writes it (no ``gpu_type``: an estimate not tied to a GPU), and the
places that show or keep an estimate coping with ``gpu_type=None``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError

from vibeml.config.budget import BudgetCheck, check_budget
from vibeml.config.preferences import Preferences
from vibeml.exceptions import BudgetExceededError
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import CostEstimate, JobRecord, JobStatus, TrainingRequest
from vibeml.reports import LaunchPreview


def _seed_estimate() -> CostEstimate:
    return CostEstimate(hourly_rate=1.2, estimated_duration_hours=10, min_cost=9.6, max_cost=15.6, expected_cost=12.0)


def test_the_reference_form_builds_a_frozen_estimate_without_a_gpu() -> None:
    est = _seed_estimate()
    assert est.gpu_type is None and est.expected_cost == 12.0
    with pytest.raises(PydanticValidationError):
        est.hourly_rate = 2.0  # type: ignore[misc]
    assert CostEstimate.model_validate_json(est.model_dump_json()) == est


def test_the_store_keeps_an_estimate_without_a_gpu(tmp_path: Path) -> None:
    now = utcnow()
    store = JobStore(tmp_path / "s.db")
    store.create(
        JobRecord(
            job_id="vml-0000aaaa",
            status=JobStatus.PENDING,
            backend="local",
            request=TrainingRequest(model="m/x", dataset="d/x", max_steps=3),
            created_at=now,
            updated_at=now,
            estimate=_seed_estimate(),
        )
    )
    got = store.get("vml-0000aaaa").estimate
    assert got == _seed_estimate() and got is not None and got.gpu_type is None


def test_the_budget_gate_names_no_gpu() -> None:
    with pytest.raises(BudgetExceededError) as info:
        check_budget(_seed_estimate(), 5.0, Preferences())
    assert info.value.context["gpu_type"] is None
    assert info.value.context["estimated_cost"] == 12.0


def test_the_dry_run_preview_renders_an_estimate_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    from vibeml.cli.jobs import _render_preview

    preview = LaunchPreview(
        request=TrainingRequest(model="m/x", dataset="d/x", max_steps=3),
        estimate=_seed_estimate(),
        plan=None,
        choice=None,
        trainer_max_runtime_seconds=None,
        budget=BudgetCheck(job_cap=None, monthly_budget=None, spent_this_month=0.0, committed_this_month=0.0),
    )
    _render_preview(preview)
    out = capsys.readouterr().out
    assert "no particular GPU" in out and "None" not in out and "$12.0000" in out
