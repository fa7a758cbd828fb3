"""`vibeml resume JOB`: a new job that continues JOB from its last complete checkpoint."""

from typing import Annotated, Any

import typer

from vibeml.cli._options import JsonOpt, MaxStepsOpt, SaveStepsOpt
from vibeml.cli._output import console
from vibeml.cli.jobs import _service, report_launch


def resume(
    job_id: Annotated[str, typer.Argument(help="The job to continue (id or unique prefix).")],
    backend: Annotated[
        str | None, typer.Option(help="Where to run it now (default: where it ran): local, vast or skypilot.")
    ] = None,
    max_cost: Annotated[float | None, typer.Option(help="Hard budget cap in USD (paid backends).")] = None,
    max_steps: MaxStepsOpt = None,
    save_steps: SaveStepsOpt = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU type, e.g. H100 (cloud backends).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Show progress until the job ends.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Continue a stopped, failed or finished job from its last complete checkpoint, as a new job.

    A torn or partial newest checkpoint is passed over for the one before it (and the launch says so).
    The same model, data and settings are used; --backend, --max-cost, --max-steps and --gpu change them
    (a local job's checkpoint is uploaded to a rented machine)."""
    overrides: dict[str, Any] = {
        "backend": backend,
        "max_cost": max_cost,
        "max_steps": max_steps,
        "save_steps": save_steps,
        "gpu_type": gpu,
    }
    svc = _service()
    with console(stderr=True).status(f"Finding the last complete checkpoint of {job_id}…"):
        record = svc.resume(job_id, **{k: v for k, v in overrides.items() if v is not None})
    report_launch(svc, record, follow, json_out)
