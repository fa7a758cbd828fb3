"""`vibeml sky export` and `vibeml sky seed-catalog`: thin front ends over the SkyPilot backend.

SkyPilot is imported only inside the commands that need it (``export``); ``seed-catalog`` works without it.
"""

from pathlib import Path
from typing import Annotated

import typer

from vibeml.cli._options import EffectiveBatchOpt
from vibeml.cli._output import console, emit_json, error_boundary

__all__ = ["register"]

sky_app = typer.Typer(help="SkyPilot: export task YAML, seed price catalogues.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``sky`` command group to ``app``."""
    app.add_typer(sky_app, name="sky")


@sky_app.command("export")
@error_boundary
def export(
    model: Annotated[str, typer.Option("--model", "-m", help="Hub id or local model dir.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Hub dataset id or a local data file.")],
    workflow: Annotated[str, typer.Option(help="trl-lora (default) or full.")] = "trl-lora",
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU type (default: the planner's cheapest).")] = None,
    gpu_count: Annotated[int, typer.Option(min=1, max=512, help="GPUs per node (with --gpu).")] = 1,
    nodes: Annotated[int, typer.Option(min=1, max=1024, help="Nodes (with --gpu).")] = 1,
    strategy: Annotated[
        str | None, typer.Option(help="Several GPUs (with --gpu): ddp (default) or fsdp; the plan's otherwise.")
    ] = None,
    cloud: Annotated[str | None, typer.Option(help="Cloud, e.g. aws, gcp, runpod.")] = None,
    spot: Annotated[bool, typer.Option("--spot/--on-demand", help="Spot capacity (a managed job).")] = False,
    max_cost: Annotated[float | None, typer.Option(help="Budget in USD: sets max_hourly_cost and a timeout.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps.")] = None,
    effective_batch: EffectiveBatchOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML here (else stdout).")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write the SkyPilot task YAML for a fine-tune, to run with `sky launch task.yaml` yourself."""
    from vibeml.backends.skypilot.task import choice_from_flags, export_task_yaml
    from vibeml.cli._output import settings
    from vibeml.client import build_request

    fields: dict[str, object] = {
        "model": model,
        "dataset": dataset,
        "workflow": workflow,
        "backend": "skypilot",
        "gpu_type": gpu,
        "gpu_count": gpu_count,
        "cloud": cloud,
        "use_spot": spot,
        "max_cost": max_cost,
    }
    if max_steps is not None:
        fields["max_steps"] = max_steps
    if effective_batch is not None:
        fields["effective_batch"] = effective_batch
    if strategy is not None:
        fields["strategy"] = strategy
    from vibeml.safe_paths import check_output_path, write_text_atomic

    target = check_output_path(output, what="output") if output is not None else None
    request = build_request(**fields)
    current = settings()
    choice = None
    if gpu:
        choice = choice_from_flags(
            gpu,
            gpu_count=gpu_count,
            num_nodes=nodes,
            cloud=cloud,
            use_spot=spot,
            max_cost=max_cost,
            runtime_dir=current.skypilot.runtime_dir,
        )
    text = export_task_yaml(request, settings=current, choice=choice, filename=target.name if target else "task.yaml")
    if target is not None:
        write_text_atomic(target, text)
    if json_out:
        emit_json({"path": str(output) if output else None, "yaml": text})
    elif output is None:
        typer.echo(text, nl=False)
    else:
        how = "sky jobs launch" if spot else "sky launch"
        console().print(f"Wrote {output}. Run it with: {how} {output} (its first lines say how to fetch the adapter)")


@sky_app.command("seed-catalog")
@error_boundary
def seed_catalog(
    cloud: Annotated[list[str] | None, typer.Option("--cloud", help="Only this cloud (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace catalogues SkyPilot downloaded.")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the catalogues VibeML seeded.")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write VibeML's price table as SkyPilot catalogues (offline use; SkyPilot never refetches them)."""
    from vibeml.backends.skypilot.catalog import catalog_root, seed_sky_catalogs, unseed_sky_catalogs
    from vibeml.cli._output import settings

    root = catalog_root(settings().skypilot.runtime_dir)
    if remove:
        removed = unseed_sky_catalogs(root)
        if json_out:
            emit_json({"removed": removed})
        else:
            console().print(f"Removed {len(removed)} seeded catalogue(s).")
        return
    report = seed_sky_catalogs(root, clouds=cloud or None, force=force)
    if json_out:
        emit_json(report)
        return
    out = console()
    for name, path in sorted(report.written.items()):
        out.print(f"[green]wrote[/] {name}: {path}")
    for name, why in sorted(report.kept.items()):
        out.print(f"[yellow]kept[/] {name}: {why}")
    for why in report.skipped:
        out.print(f"[dim]skipped {why}[/]")
