"""`vibeml vast offers / instances / destroy / cleanup`: thin wrappers over the Vast backend and the service.

``vibeml launch --backend vast`` itself goes through the ordinary launch command.
"""

from typing import TYPE_CHECKING, Annotated

import typer

from vibeml.cli._options import JsonOpt
from vibeml.cli._output import console, emit_json, error_boundary, fmt_money
from vibeml.cli._tables import Alt, Col, fit_table

if TYPE_CHECKING:
    from vibeml.backends.vast import VastBackend
    from vibeml.client import VibeML
    from vibeml.reports import ReconcileReport


def register(app: typer.Typer) -> None:
    """Add the ``vast`` command group to ``app``."""
    group = typer.Typer(
        name="vast",
        help="Vast.ai: search offers, list and destroy instances, clean up what VibeML left behind.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    group.command("offers")(error_boundary(offers))
    group.command("instances")(error_boundary(instances))
    group.command("destroy")(error_boundary(destroy))
    group.command("cleanup")(error_boundary(cleanup))
    app.add_typer(group, name="vast")


def _service() -> "VibeML":
    from vibeml.cli._output import service

    return service()


def _backend(svc: "VibeML") -> "VastBackend":
    from vibeml.backends.vast import VastBackend
    from vibeml.exceptions import ConfigurationError

    backend = svc.backends.get("vast")
    if not isinstance(backend, VastBackend):
        raise ConfigurationError("the 'vast' backend is not VibeML's Vast.ai backend", {"backend": "vast"})
    return backend


def _gb(mb: float) -> str:
    return f"{mb / 1024:.0f}" if mb else "-"


#: `vibeml vast offers`: narrower than 120 columns the headers shorten and the prices take three decimals;
#: then the disk, CUDA, minimum bid, reliability and location go, in that order, as the width requires
#: (all stay in --json). The id, GPU, VRAM and price always stay.
OFFER_COLUMNS = (
    Col("id"),
    Col("gpu"),
    Col("VRAM GiB", "GiB"),
    Col("$/h"),
    Col("min bid", "bid", drop=3),
    Col("reliability", "rel.", drop=2),
    Col("cuda", drop=4),
    Col("disk GB", "disk", drop=5),
    Col("location", drop=1),
)


def _per_hour(value: float | None) -> str:
    return "-" if value is None else f"${value:.3f}"


def offers(
    query: Annotated[
        list[str] | None, typer.Argument(help="Filters, e.g. gpu_name=RTX_4090 num_gpus=1 reliability>0.99.")
    ] = None,
    order: Annotated[str, typer.Option(help="Sort, e.g. dph_total (cheapest first) or score-.")] = "dph_total",
    type: Annotated[str, typer.Option("--type", help="on-demand, bid (interruptible) or reserved.")] = "on-demand",
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many offers.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Search the Vast.ai marketplace (Vast's own query language)."""
    report = _service().search_offers(" ".join(query or []), type=type, order=order, limit=limit)
    if json_out:
        emit_json(report)
        return
    if not report.offers:
        console().print("No offers match.")
        return
    from rich.markup import escape

    out = console()
    rows = [
        [
            str(o.id),
            escape(f"{o.num_gpus}x {o.gpu_name}"),
            _gb(o.gpu_ram),
            Alt(fmt_money(o.dph_total), _per_hour(o.dph_total)),
            Alt(fmt_money(o.min_bid), _per_hour(o.min_bid)),
            "-" if o.reliability is None else f"{o.reliability:.4f}",
            "-" if o.cuda_max_good is None else f"{o.cuda_max_good:g}",
            "-" if o.disk_space is None else f"{o.disk_space:g}",
            escape(o.geolocation or "-"),
        ]
        for o in report.offers
    ]
    out.print(fit_table(OFFER_COLUMNS, rows, out, title=f"Vast.ai offers ({escape(type)})"))


def instances(json_out: JsonOpt = False) -> None:
    """List the account's instances (VibeML's carry the label vibeml-<installation id>-<job id>)."""
    rows = _backend(_service()).instances()
    if json_out:
        emit_json(rows)
        return
    if not rows:
        console().print("No instances.")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Vast.ai instances")
    for col in ("id", "label", "status", "gpu", "$/h", "message"):
        table.add_column(col)
    for i in rows:
        table.add_row(
            str(i.get("id")),
            escape(str(i.get("label") or "")),
            str(i.get("actual_status") or "-"),
            f"{i.get('num_gpus') or '?'}x {i.get('gpu_name') or '?'}",
            fmt_money(i.get("dph_total")),
            escape(str(i.get("status_msg") or "")[:60]),
        )
    console().print(table)


def destroy(
    instance_id: Annotated[int, typer.Argument(help="Instance id (see `vibeml vast instances`).")],
    json_out: JsonOpt = False,
) -> None:
    """Destroy one instance for good (billing stops; its disk is gone)."""
    from vibeml.exceptions import BackendError
    from vibeml.vast import VastNotFoundError

    try:
        _backend(_service()).destroy(instance_id)
    except VastNotFoundError:
        raise BackendError(
            f"instance {instance_id} does not exist (already destroyed?)",
            {"instance_id": instance_id},
            "List your instances with `vibeml vast instances`.",
        ) from None
    if json_out:
        emit_json({"id": instance_id, "destroyed": True})
    else:
        console().print(f"Destroyed instance {instance_id}.")


def cleanup(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Destroy without asking.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Destroy this installation's instances whose job is over (or gone); list the rest, leave them alone.

    Only instances whose label matches a launch recorded in this VIBEML_HOME are ever destroyed; the
    account's other instances (no label, your own, another VibeML home's) are listed with their price.
    Jobs are refreshed first, so a launch that was killed half-way is settled (its instance destroyed).
    Without --yes it lists them and asks; with --json and no --yes it only lists them.
    """
    svc = _service()
    svc.list_jobs(limit=10_000)  # refreshing settles half-finished launches
    if not yes:
        found = svc.reconcile(backend="vast")
        _report(found, json_out, title="Orphaned VibeML instances (not destroyed yet)")
        if not found.orphans or json_out:  # --json without --yes is a dry run
            return
        if not typer.confirm(f"Destroy these {len(found.orphans)} instance(s)?", default=False):
            raise typer.Exit(1)
    _report(svc.reconcile(cleanup=True, backend="vast"), json_out, title="Cleanup")


def _report(report: "ReconcileReport", json_out: bool, title: str = "") -> None:
    if json_out:
        emit_json(report)
        return
    from rich.markup import escape
    from rich.table import Table

    if not report.orphans:
        console().print("No orphaned VibeML instances on Vast.ai.")
    else:
        table = Table(title=title)
        for col in ("id", "label", "status", "$/h", "destroyed", "reason"):
            table.add_column(col)
        for i in report.orphans:
            done = i.destroyed
            table.add_row(
                escape(i.id),
                escape(i.label),
                escape(i.status or "-"),
                fmt_money(i.dph_total),
                "-" if done is None else ("yes" if done else "[red]NO[/]"),
                escape(i.reason),
            )
        console().print(table)
    if report.left_alone:
        others = Table(title="Not this VibeML's (another installation's, or not VibeML's) — left alone")
        for col in ("id", "label", "status", "$/h", "reason"):
            others.add_column(col)
        for i in report.left_alone:
            others.add_row(
                escape(i.id), escape(i.label or "-"), escape(i.status or "-"), fmt_money(i.dph_total), escape(i.reason)
            )
        console().print(others)
