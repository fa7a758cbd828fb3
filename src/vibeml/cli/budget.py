"""`vibeml budget set/show` and `vibeml spending`: thin wrappers over preferences and the ledger."""

from typing import TYPE_CHECKING, Annotated

import typer

from vibeml.cli._output import console, emit_json, error_boundary, fmt_money, service

if TYPE_CHECKING:
    from vibeml.config.budget import BudgetStatus

budget_app = typer.Typer(help="Per-job cap and monthly budget.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(budget_app, name="budget")
    app.command("spending")(error_boundary(spending))


@budget_app.command("set")
@error_boundary
def budget_set(
    monthly: Annotated[float | None, typer.Option("--monthly", help="Monthly budget in USD.")] = None,
    per_job: Annotated[float | None, typer.Option("--per-job", help="Default per-job cap in USD.")] = None,
    warn_at: Annotated[float | None, typer.Option("--warn-at", help="Warn past this fraction (0-1).")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set the monthly budget, the default per-job cap and the warning threshold (all validated together)."""
    svc = service()
    status = svc.set_budget(monthly=monthly, per_job=per_job, warn_at=warn_at)
    _show(status, json_out)


@budget_app.command("show")
@error_boundary
def budget_show(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The caps, what this month has spent and committed, and what is left."""
    _show(service().budget_status(), json_out)


def _show(s: "BudgetStatus", json_out: bool) -> None:
    if json_out:
        emit_json(s)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("month", s.month)
    table.add_row("monthly budget", fmt_money(s.monthly_budget))
    table.add_row("per-job cap", fmt_money(s.max_cost_per_job))
    table.add_row("warn at", f"{s.warning_threshold:.0%}")
    table.add_row("spent", fmt_money(s.spent))
    table.add_row("committed (running jobs)", fmt_money(s.committed))
    table.add_row("remaining", fmt_money(s.remaining))
    console().print(table)


def spending(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month); 'all' for every month.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The spending ledger: per job, estimated, accrued and final cost."""
    report = service().spending(month)
    if json_out:
        emit_json(report)
        return
    from rich.table import Table

    table = Table(title=f"Spending ({report.month})")
    for col in ("job", "backend", "month", "estimated", "accrued", "final", "cap"):
        table.add_column(col)
    for line in report.ledger:
        table.add_row(
            line.job_id,
            line.backend,
            line.month,
            fmt_money(line.estimated_cost),
            fmt_money(line.accrued_cost),
            fmt_money(line.final_cost),
            fmt_money(line.max_cost),
        )
    console().print(table)
    console().print(f"total: {fmt_money(report.total)}")
