"""`vibeml validate model ID` and `vibeml validate dataset PATH_OR_ID`: checks before anything is launched.

Thin: parse, one service call, render (Rich or ``--json``). Nothing heavy is imported at module import.
"""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from vibeml.cli._options import JsonOpt
from vibeml.cli._output import console, emit_json, error_boundary, service

if TYPE_CHECKING:
    from vibeml.validation.dataset import DatasetReport
    from vibeml.validation.model import ModelInfo

__all__ = ["register"]

validate_app = typer.Typer(help="Check a model or a dataset before training.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `validate` command group to ``app``."""
    app.add_typer(validate_app, name="validate")


@validate_app.command("model")
@error_boundary
def validate_model(
    model: Annotated[str, typer.Argument(help="Hub id (org/name) or local model directory.")],
    json_out: JsonOpt = False,
) -> None:
    """Exists? Gated or private, and may your token download it? Parameters, size, architecture, licence."""

    info = service().validate_model(model)
    if json_out:
        emit_json(info)
        return
    _render_model(info)


@validate_app.command("dataset")
@error_boundary
def validate_dataset(
    dataset: Annotated[str, typer.Argument(help="Local .jsonl/.json/.csv/.parquet (or folder) or hub dataset id.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Count tokens with this model's tokenizer.")
    ] = None,
    dataset_format: Annotated[
        str,
        typer.Option(
            "--format", "--dataset-format", help="auto, alpaca, messages, sharegpt, prompt_completion or text."
        ),
    ] = "auto",
    column_mapping: Annotated[
        str | None, typer.Option(help="Rename columns first: old=new,old2=new2 (e.g. question=instruction).")
    ] = None,
    split: Annotated[str, typer.Option(help="Hub split to read.")] = "train",
    max_seq_length: Annotated[int | None, typer.Option(min=8, help="Count rows longer than this.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Format, rows, malformed rows and token statistics, read the way the trainer reads them."""
    from vibeml.cli._output import parse_column_mapping

    report = service().validate_dataset(
        dataset,
        model,
        dataset_format,
        column_mapping=parse_column_mapping(column_mapping),
        split=split,
        max_seq_length=max_seq_length,
    )
    if json_out:
        emit_json(report)
        return
    _render_dataset(report)


def _table() -> Any:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    return table


def _render_model(info: "ModelInfo") -> None:
    from rich.markup import escape

    table = _table()
    rows = [
        ("model", info.model_id),
        ("source", info.source + (f" @ {info.revision[:12]}" if info.revision else "")),
        ("architecture", f"{info.architecture or '-'} ({info.model_type or '?'})"),
        ("parameters", f"{info.parameter_count:,}" if info.parameter_count else "-"),
        ("by dtype", ", ".join(f"{k} {v:,}" for k, v in info.parameters_by_dtype.items()) or "-"),
        ("size", f"{info.size_gb:.2f} GB" if info.size_gb is not None else "-"),
        ("license", info.license or "-"),
        ("private / gated", f"{'yes' if info.private else 'no'} / {info.gating or ('yes' if info.gated else 'no')}"),
        (
            "access",
            ("yes" if info.has_access else "no")
            + (f" (token from {info.token_source})" if info.token_used else " (no token)"),
        ),
    ]
    for key, value in rows:
        table.add_row(key, escape(str(value)))
    out = console()
    out.print(table)
    for warning in info.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print("[bold green]OK[/]" if info.has_access else "[bold yellow]no access yet[/]")


def _render_dataset(report: "DatasetReport") -> None:
    from rich.markup import escape

    table = _table()
    rows = [
        ("dataset", f"{report.dataset} ({report.source})"),
        ("format", report.format + (" (detected)" if report.format_detected else "")),
        ("columns", ", ".join(report.columns)),
        ("rows", f"{report.num_rows:,}" + ("" if report.num_rows_exact else " (extrapolated)")),
        ("checked / usable / skipped", f"{report.rows_checked:,} / {report.usable_rows:,} / {report.skipped_rows:,}"),
    ]
    if report.column_mapping:
        rows.append(("column mapping", ", ".join(f"{k}→{v}" for k, v in report.column_mapping.items())))
    t = report.token_stats
    if t is not None:
        how = f"tokenizer of {t.tokenizer}" if t.method == "tokenizer" else "estimate: characters / 4"
        rows.append(
            (
                "tokens per row",
                f"mean {t.mean:.1f}, median {t.median:.0f}, p95 {t.p95:.0f}, max {t.max} "
                f"({how}; {t.rows_counted:,} rows)",
            )
        )
    if report.stats is not None:
        total = report.stats.total_tokens or round((report.stats.rows or 0) * (report.stats.mean_tokens_per_row or 0))
        rows.append(("tokens per epoch", f"≈{total:,}"))
    if report.license:
        rows.append(("license", report.license))
    for key, value in rows:
        table.add_row(key, escape(str(value)))
    out = console()
    out.print(table)
    for problem in report.problems:
        out.print(f"[dim]skipped {escape(problem)}[/]")
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print("[bold green]OK[/]")
