from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibeml.config.budget import check_budget
from vibeml.config.preferences import Preferences
from vibeml.exceptions import BudgetExceededError
from vibeml.models import CostEstimate


def _est(cost: float) -> CostEstimate:
    return CostEstimate(
        gpu_type="H100",
        hourly_rate=2.0,
        estimated_duration_hours=cost / 2,
        min_cost=cost * 0.8,
        expected_cost=cost,
        max_cost=cost * 1.3,
    )


def test_per_job_cap_from_request_then_preferences() -> None:
    with pytest.raises(BudgetExceededError) as info:
        check_budget(_est(6), 5, Preferences())
    assert info.value.context["estimated_cost"] == 6 and info.value.context["max_cost"] == 5
    assert "--max-cost" in info.value.message
    with pytest.raises(BudgetExceededError, match="preferences"):
        check_budget(_est(6), None, Preferences(max_cost_per_job=4))
    assert check_budget(_est(6), 10, Preferences(max_cost_per_job=4)).job_cap == 10  # explicit wins


def test_monthly_budget_counts_spent_and_committed() -> None:
    prefs = Preferences(monthly_budget=20)
    ok = check_budget(_est(5), None, prefs, spent_this_month=5, committed_this_month=5)
    assert ok.warnings == ()
    with pytest.raises(BudgetExceededError) as info:
        check_budget(_est(5), None, prefs, spent_this_month=10, committed_this_month=6)
    ctx = info.value.context
    assert ctx["monthly_budget"] == 20 and ctx["spent_this_month"] == 10 and ctx["committed_this_month"] == 6
    assert "budget set --monthly" in (info.value.recovery_suggestion or "")


def test_warning_past_threshold() -> None:
    check = check_budget(
        _est(5), None, Preferences(monthly_budget=20, budget_warning_threshold=0.5), spent_this_month=6
    )
    assert check.warnings and "55%" in check.warnings[0]


@given(st.floats(0.001, 100), st.floats(0, 100), st.floats(0, 100), st.floats(1, 200))
def test_gate_never_lets_the_month_overflow(cost: float, spent: float, committed: float, monthly: float) -> None:
    try:
        check_budget(_est(cost), None, Preferences(monthly_budget=monthly), spent, committed)
    except BudgetExceededError:
        assert spent + committed + cost > monthly
    else:
        assert spent + committed + cost <= monthly


def test_free_runs_are_never_refused() -> None:
    free = CostEstimate(
        gpu_type="local", hourly_rate=0, estimated_duration_hours=0, min_cost=0, expected_cost=0, max_cost=0
    )
    assert check_budget(free, None, Preferences(monthly_budget=1), spent_this_month=5).warnings == ()
