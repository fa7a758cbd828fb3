"""The budget gate: a pure function over the estimate, the caps and what this month already holds.

A launch is refused (``BudgetExceededError``, nothing started) when its expected cost exceeds the
per-job cap (the request's ``max_cost``, else the preference ``max_cost_per_job``), or when
spent + committed this month + the expected cost exceeds ``monthly_budget``. "Committed" is what live
jobs may still spend (their estimate above what they have accrued), so two launches in a row cannot
both squeeze under the same remaining budget; a terminal job commits nothing (its line is settled).
Free runs (the local backend) are never refused.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from vibeml.config.preferences import Preferences
from vibeml.exceptions import BudgetExceededError
from vibeml.models import CostEstimate

__all__ = ["BudgetCheck", "BudgetStatus", "check_budget"]


class BudgetStatus(BaseModel):
    """The caps and this month's figures, for `vibeml budget show` and the MCP `get_spending` tool."""

    month: str
    monthly_budget: float | None
    max_cost_per_job: float | None
    warning_threshold: float
    spent: float
    committed: float
    remaining: float | None


class BudgetCheck(BaseModel):
    """The outcome of a passed gate: the cap that applies and any warnings to show."""

    model_config = ConfigDict(frozen=True)

    job_cap: float | None
    monthly_budget: float | None
    spent_this_month: float
    committed_this_month: float
    warnings: tuple[str, ...] = ()


def check_budget(
    estimate: CostEstimate,
    max_cost: float | None,
    prefs: Preferences,
    spent_this_month: float = 0.0,
    committed_this_month: float = 0.0,
) -> BudgetCheck:
    """Raise ``BudgetExceededError`` when the job cannot fit; else say which caps apply."""
    expected = estimate.expected_cost
    job_cap = max_cost if max_cost is not None else prefs.max_cost_per_job
    if job_cap is not None and expected > job_cap:
        source = "--max-cost" if max_cost is not None else "max_cost_per_job (preferences)"
        raise BudgetExceededError(
            f"estimated cost ${expected:.4f} exceeds the per-job cap ${job_cap:.4f} ({source})",
            estimated_cost=expected,
            max_cost=job_cap,
            context={
                "gpu_type": estimate.gpu_type,
                "hourly_rate": estimate.hourly_rate,
                "estimated_hours": round(estimate.estimated_duration_hours, 4),
            },
            recovery_suggestion=(
                "Raise the cap, train for fewer steps/epochs, or let the planner pick a cheaper GPU (`vibeml plan`)."
            ),
        )
    warnings: list[str] = []
    monthly = prefs.monthly_budget
    if monthly is not None and expected > 0:  # a free (local) run never spends the budget
        used = spent_this_month + committed_this_month
        if used + expected > monthly:
            raise BudgetExceededError(
                f"this job (${expected:.4f}) would take the month past its budget: "
                f"${spent_this_month:.4f} spent + ${committed_this_month:.4f} committed to running jobs "
                f"of ${monthly:.4f}",
                estimated_cost=expected,
                max_cost=max(0.0, monthly - used),
                context={
                    "monthly_budget": monthly,
                    "spent_this_month": round(spent_this_month, 4),
                    "committed_this_month": round(committed_this_month, 4),
                },
                recovery_suggestion=(
                    "Wait for next month, stop a running job, or raise it: `vibeml budget set --monthly AMOUNT`."
                ),
            )
        if monthly > 0 and (used + expected) / monthly >= prefs.budget_warning_threshold:
            warnings.append(
                f"after this job, ${used + expected:.2f} of the ${monthly:.2f} monthly budget is spent or "
                f"committed ({(used + expected) / monthly:.0%})"
            )
    return BudgetCheck(
        job_cap=job_cap,
        monthly_budget=monthly,
        spent_this_month=spent_this_month,
        committed_this_month=committed_this_month,
        warnings=tuple(warnings),
    )
