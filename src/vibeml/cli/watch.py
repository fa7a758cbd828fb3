"""Evaluation and watching in the CLI: `launch`'s eval/report options, `vibeml plot`, and the eval loss and
in-terminal curves that `status`, `jobs` and the summary show. Only typer/rich at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from vibeml.cli._options import JsonOpt
from vibeml.cli._output import console, emit_json, error_boundary, fmt_loss

if TYPE_CHECKING:
    from vibeml.client import VibeML
    from vibeml.models import JobRecord

EvalSplitOpt = Annotated[
    float | None, typer.Option("--eval-split", help="Hold out this fraction of the rows (0-1) for eval loss.")
]
EvalDatasetOpt = Annotated[
    str | None, typer.Option("--eval-dataset", help="A separate eval dataset: local file or hub id.")
]
EvalDatasetSplitOpt = Annotated[
    str | None, typer.Option("--eval-dataset-split", help="The eval dataset's split (default train).")
]
EvalStepsOpt = Annotated[
    int | None, typer.Option("--eval-steps", help="Evaluate every N steps (default: ~10 times a run, and at the end).")
]
KeepBestOpt = Annotated[
    bool, typer.Option("--keep-best", help="Deliver the checkpoint with the lowest eval loss (saved at each eval).")
]
ReportToOpt = Annotated[
    str | None,
    typer.Option("--report-to", help="Also log to tensorboard (in the job's folder), wandb or mlflow; default none."),
]


def watch_settings(
    *,
    eval_split: float | None,
    eval_dataset: str | None,
    eval_dataset_split: str | None,
    eval_steps: int | None,
    keep_best: bool,
    report_to: str | None,
) -> dict[str, Any]:
    """The options as request fields; unset ones left out (the request validates them)."""
    fields: dict[str, Any] = {
        "eval_split": eval_split,
        "eval_dataset": eval_dataset,
        "eval_dataset_split": eval_dataset_split,
        "eval_steps": eval_steps,
        "keep_best": keep_best or None,
        "report_to": report_to,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _service() -> VibeML:
    from vibeml.cli._output import service

    return service()


def register(app: typer.Typer) -> None:
    app.command("plot")(error_boundary(plot))


def plot(
    job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="PNG path (default: curves.png in the job's folder).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a PNG of train/eval loss and learning rate over steps (and cost against the cap for paid jobs)."""
    from vibeml.plot import write_job_plot

    path = write_job_plot(_service(), job_id, output)
    if json_out:
        emit_json({"job_id": job_id, "path": str(path)})
    else:
        console().print(f"Wrote {path}")


# ------------------------------------------------------------------- hooks for status, jobs, summary


def eval_text(record: JobRecord) -> str:
    """``3.6550 (ppl 38.67, best 3.6550)``, or ``-`` without an eval."""
    p = record.progress
    if p is None or p.eval_loss is None:
        return "-"
    extra = [f"ppl {p.eval_perplexity:.2f}"] if p.eval_perplexity is not None else []
    if p.best_eval_loss is not None and p.best_eval_loss != p.eval_loss:
        extra.append(f"best {p.best_eval_loss:.4f}")
    return fmt_loss(p.eval_loss) + (f" ({', '.join(extra)})" if extra else "")


def status_rows(svc: VibeML, record: JobRecord) -> list[tuple[str, str]]:
    """Eval loss, the kept checkpoint and sparklines of the curves, for `vibeml status`."""
    from rich.markup import escape

    from vibeml.curves import job_curves, sparkline

    rows: list[tuple[str, str]] = []
    p = record.progress
    if p is not None and p.eval_loss is not None:
        rows.append(("eval loss", eval_text(record) + (f" at step {p.eval_step}" if p.eval_step is not None else "")))
    if p is not None and p.best_checkpoint:
        rows.append(("best checkpoint", escape(p.best_checkpoint)))
    curves = job_curves(record, svc.job_dir(record.job_id), svc.store.events(record.job_id))
    for label, points in (("loss curve", curves.train_loss), ("eval curve", curves.eval_loss)):
        if len(points) >= 2:
            values = [y for _, y in points]
            rows.append((label, f"{sparkline(values)} {values[0]:.3f} → {values[-1]:.3f}"))
    if len(curves.cost) >= 2:
        rows.append(("cost curve", sparkline([y for _, y in curves.cost]) + f" ${curves.cost[-1][1]:.4f}"))
    return rows


def summary_lines(svc: VibeML, record: JobRecord) -> list[str]:
    """Eval lines and the picture of the curves (written now), for the end-of-run summary."""
    from rich.markup import escape

    from vibeml.exceptions import VibeMLError
    from vibeml.plot import write_job_plot

    lines: list[str] = []
    if record.progress is not None and record.progress.eval_loss is not None:
        lines.append(f"Eval loss: {eval_text(record)}")
    if record.progress is not None and record.progress.best_checkpoint:
        lines.append(f"Best checkpoint: {escape(record.progress.best_checkpoint)}")
    try:
        lines.append(f"Curves: {escape(str(write_job_plot(svc, record.job_id)))}")
    except (OSError, VibeMLError) as exc:  # a picture must never hide the summary
        lines.append(f"[yellow]Curves: not written ({escape(str(exc))[:120]})[/]")
    return lines
