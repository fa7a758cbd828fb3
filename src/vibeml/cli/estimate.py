"""`vibeml estimate`, `vibeml plan` and `vibeml gpus`: thin front ends over vibeml.estimate.

Each command parses its options, makes one estimation call and renders a Rich table or ``--json``.
Nothing heavy is imported at module import (the estimator is imported inside the command bodies), and
errors are raised as ``VibeMLError`` subclasses for the app's error boundary to map to exit codes.
"""

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from vibeml.cli._output import emit_json, error_boundary, service
from vibeml.cli._tables import Alt, Col, fit_table, pack, short_count

if TYPE_CHECKING:
    from pydantic import BaseModel

    from vibeml.estimate.prices import PriceInfo
    from vibeml.reports import EstimateReport, PlanReport

Q = TypeVar("Q", bound="BaseModel")

__all__ = ["register"]


class MethodChoice(str, Enum):
    lora = "lora"
    qlora = "qlora"
    full = "full"


class LossChoice(str, Enum):
    fused = "fused"
    standard = "standard"


class OptimizerChoice(str, Enum):
    adamw = "adamw"
    adamw_8bit = "adamw_8bit"


class ParallelismChoice(str, Enum):
    ddp = "ddp"
    fsdp = "fsdp"


def _config(micro: int, accum: int, checkpointing: bool, strategy: str) -> str:
    """'2×8 ckpt' / '1×4 fsdp': micro-batch × accumulation, checkpointing, strategy (when not single)."""
    return f"{micro}×{accum}" + (" ckpt" if checkpointing else "") + ("" if strategy == "single" else f" {strategy}")


#: `vibeml estimate`'s two tables (narrow enough for 80 columns as they are; compact there all the same).
TRIED_COLUMNS = (
    Col(""),
    Col("config"),
    Col("GiB", justify="right"),
    Col("fits"),
    Col("hours", justify="right"),
)
MEMORY_COLUMNS = (Col("part"), Col("GiB", justify="right"))


def _render_job(r: "EstimateReport") -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    verdict = "[green]fits[/]" if r.fits else "[red]does not fit[/]"
    where = "" if r.gpu_count == 1 else f" ({r.strategy})"
    batch = f"effective batch {r.effective_batch} = {r.batch_size} × {r.grad_accum} accum" + (
        f" × {r.gpu_count} GPUs" if r.gpu_count > 1 else ""
    )
    head = [f"[bold]{escape(r.model)}[/]", r.method, f"{r.gpu_count}× {r.gpu}{where}", f"seq {r.max_seq_length}"]
    head += [batch, f"checkpointing {'on' if r.gradient_checkpointing else 'off'}", f"loss={r.loss}"]
    for line in pack(head, console.width):
        console.print(line)
    if r.trials:
        rows = [
            [
                "[bold green]→[/]" if t.chosen else "",
                _config(t.micro_batch, t.grad_accum, t.gradient_checkpointing, t.strategy),
                f"{t.memory_gib:.1f}/{t.budget_gib:.1f}",
                "yes" if t.fits else "[red]no[/]",
                "—" if t.train_hours is None else f"{t.train_hours:.2f}",
            ]
            for t in r.trials
        ]
        console.print(
            fit_table(TRIED_COLUMNS, rows, console, title="configurations tried (per GPU)", header_style="bold")
        )
    if r.config_reason:
        console.print(f"chosen: {escape(r.config_reason)}")
    parts = [
        [key.replace("_", " "), f"{value:.2f}"] for key, value in r.breakdown.model_dump().items() if value >= 0.0005
    ]
    parts.append(["[bold]total (nvidia-smi)[/]", f"[bold]{r.total_gib:.2f}[/]"])
    mem_title = f"GPU memory (per GPU, GiB){'' if r.gpu_count == 1 else ', ' + r.strategy}"
    console.print(fit_table(MEMORY_COLUMNS, parts, console, title=mem_title, header_style="bold"))
    console.print(
        f"{verdict} on {r.gpu} ({_gib(r.capacity_gib)} GiB; needs {r.required_gib:.1f}, "
        f"headroom {_gib(r.headroom_gib)} GiB; peak in the {r.peak_phase} phase)"
    )
    speed = [f"speed {r.tokens_per_s:,.0f} tokens/s ({r.bound}-bound, MFU {r.mfu:.0%})", f"{r.steps:,} steps"]
    speed.append(f"training {r.train_hours:.2f} h + setup {r.setup_hours:.2f} h")
    for line in pack(speed, console.width):
        console.print(line)
    place = r.cloud if r.cloud == "local" else f"{r.cloud}/{r.region}"
    console.print(
        f"cost on {place}{' (spot)' if r.spot else ''}: [bold]${r.expected_cost:.2f}[/] "
        f"(${r.min_cost:.2f}–${r.max_cost:.2f}) at ${r.hourly_rate:.2f}/h"
    )
    for note in r.assumptions:
        console.print(f"[dim]· {escape(note)}[/]")


def _gib(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


#: `vibeml plan` (and `launch --dry-run`): from 120 columns every column; narrower, the market joins the
#: cloud ("vast spot"), the region goes, the stale-price star moves to the cost, then tok/s, memory,
#: $/GPU-h, the cost range and the hours go, in that order, as the width requires (all stay in --json).
PLAN_COLUMNS = (
    Col("#", justify="right"),
    Col("cloud"),
    Col("GPU"),
    Col("config"),
    Col("market", wide_only=True),
    Col("$/GPU-h", justify="right", drop=3),
    Col("hours", justify="right", drop=1),
    Col("tok/s", justify="right", drop=5),
    Col("mem GiB", "GiB", justify="right", drop=4),
    Col("expected $", "cost $", justify="right"),
    Col("range $", justify="right", drop=2),
)


#: `vibeml gpus`: narrower than 120 columns the headers shorten and the clouds wrap in what width is left.
GPU_COLUMNS = (
    Col("GPU"),
    Col("GiB", justify="right"),
    Col("bf16 TFLOP/s", "TFLOP/s", justify="right"),
    Col("GB/s", justify="right"),
    Col("on-demand", justify="right"),
    Col("spot", justify="right"),
    Col("clouds", wrap=True),
)


def render_plan(r: "PlanReport", title: str | None = None) -> None:
    """The plan's options as a table (also under `vibeml launch --dry-run`); compact under 120 columns."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    stale = {(q.cloud, q.region, q.gpu, q.spot) for q in r.prices.stale} if r.prices else set()
    rows = []
    for o in r.options:
        star = "*" if (o.cloud, o.region, o.gpu, o.spot) in stale else ""
        cost = f"[bold]{o.expected_cost:.2f}[/]"
        gpus: str | Alt = f"{o.gpu_count}× {o.gpu}"
        if o.num_nodes > 1:
            gpus = Alt(f"{o.num_nodes} nodes × {gpus}", f"{o.num_nodes}×{gpus}")
        rows.append(
            [
                str(o.rank),
                Alt(f"{o.cloud}/{o.region}", o.cloud + (" spot" if o.spot else "")),
                gpus,
                _config(o.micro_batch, o.grad_accum, o.gradient_checkpointing, o.strategy),
                "spot" if o.spot else "on-demand",
                Alt(f"{o.usd_per_gpu_hour:.2f}{star}", f"{o.usd_per_gpu_hour:.2f}"),
                f"{o.hours:.2f}",
                Alt(f"{o.tokens_per_s:,.0f}", short_count(o.tokens_per_s)),
                Alt(f"{o.memory_gib:.1f}/{o.capacity_gib:.0f}", f"{o.memory_gib:.0f}/{o.capacity_gib:.0f}"),
                Alt(cost, cost + star),
                f"{o.min_cost:.2f}–{o.max_cost:.2f}",
            ]
        )
    table = fit_table(
        PLAN_COLUMNS, rows, console, title=title or f"{escape(r.model)}: cheapest total cost first", header_style="bold"
    )
    console.print(table)
    console.print("[dim]config: micro-batch × accumulation per GPU; ckpt = gradient checkpointing[/]")
    shown = len(r.options)
    if r.total_options > shown:
        console.print(f"[dim]{r.total_options - shown} more options (--top)[/]")
    reasons: dict[str, int] = {}
    for rejected in r.rejected:
        reasons[rejected.reason] = reasons.get(rejected.reason, 0) + 1
    if reasons:
        console.print("[dim]dropped: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in reasons.items()) + "[/]")
    for note in r.assumptions:
        console.print(f"[dim]· {escape(note)}[/]")
    if r.prices is not None:
        render_price_sources(r.prices)


def render_price_sources(info: "PriceInfo") -> None:
    """Where the prices came from, their age, and the stale ones (under the plan table)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for i, source in enumerate(info.sources):
        console.print(f"[dim]{'prices: ' if i == 0 else '        '}{source.name}: {escape(source.detail)}[/]")
    if info.stale:
        oldest = min(q.as_of for q in info.stale)
        console.print(
            f"[yellow]* {len(info.stale)} price(s) older than {info.stale_after_days} days (table of "
            f"{oldest.isoformat()}): check the provider's page[/]"
        )
    for warning in info.warnings:
        console.print(f"[yellow]warning: {escape(warning)}[/]")


def _query(cls: type[Q], **fields: Any) -> Q:
    """Build a query model, turning pydantic's errors into one clear ValidationError."""
    from pydantic import ValidationError as PydanticValidationError

    from vibeml.exceptions import ValidationError

    try:
        return cls.model_validate(fields)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic(exc, "options", "See --help for each option's range.") from None


def register(app: typer.Typer) -> None:
    """Add the `estimate`, `plan` and `gpus` commands to ``app``."""

    @app.command("estimate")
    @error_boundary
    def estimate_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Hub id, local model directory or built-in name.")],
        method: Annotated[MethodChoice, typer.Option("--method", help="lora, qlora or full.")] = MethodChoice.lora,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", min=1, help="Per-GPU micro-batch (default: chosen).")
        ] = None,
        max_seq_length: Annotated[int, typer.Option("--max-seq-length", min=1, help="Tokens per sequence.")] = 1024,
        gradient_checkpointing: Annotated[
            bool | None,
            typer.Option(
                "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations (default: chosen)."
            ),
        ] = None,
        lora_r: Annotated[int, typer.Option("--lora-r", min=1, help="LoRA rank.")] = 16,
        lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, max=0.99, help="LoRA dropout.")] = 0.05,
        gpu: Annotated[
            str, typer.Option("--gpu", help="GPU type (any alias: 'A100-80GB', 'RTX 4090', '4090').")
        ] = "H100",
        gpu_count: Annotated[int, typer.Option("--gpu-count", min=1, help="GPUs.")] = 1,
        parallelism: Annotated[
            ParallelismChoice | None,
            typer.Option("--strategy", "--parallelism", help="ddp or fsdp on several GPUs (default: chosen)."),
        ] = None,
        loss: Annotated[
            LossChoice,
            typer.Option(
                "--loss",
                help="fused = VibeML's trainer (TRL fused LM head); standard = a plain model(..., labels=...) loop.",
            ),
        ] = LossChoice.fused,
        optimizer: Annotated[OptimizerChoice, typer.Option("--optimizer")] = OptimizerChoice.adamw,
        max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Optimizer steps.")] = None,
        epochs: Annotated[float | None, typer.Option("--epochs", min=0.0, help="Epochs (with --dataset-rows).")] = None,
        dataset_rows: Annotated[int | None, typer.Option("--dataset-rows", min=1, help="Rows in the dataset.")] = None,
        mean_tokens: Annotated[
            float | None, typer.Option("--mean-tokens", min=1.0, help="Mean tokens per row.")
        ] = None,
        grad_accum: Annotated[
            int | None, typer.Option("--grad-accum", min=1, help="Gradient accumulation steps (default: chosen).")
        ] = None,
        effective_batch: Annotated[
            int | None,
            typer.Option(
                "--effective-batch", min=1, help="Sequences per optimizer step, all GPUs (default: batch × accum)."
            ),
        ] = None,
        cloud: Annotated[
            str | None, typer.Option("--cloud", help="Price on this cloud (default: cheapest; 'local').")
        ] = None,
        spot: Annotated[bool, typer.Option("--spot/--no-spot", help="Spot/interruptible price.")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Memory, speed, time and cost of one fine-tune on one GPU choice."""
        from vibeml.estimate.report import EstimateQuery

        query = _query(
            EstimateQuery,
            model=model,
            method=method.value,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            gradient_checkpointing=gradient_checkpointing,
            lora_r=lora_r,
            lora_dropout=lora_dropout,
            gpu=gpu,
            gpu_count=gpu_count,
            parallelism=parallelism.value if parallelism else None,
            loss=loss.value,
            optimizer=optimizer.value,
            max_steps=max_steps,
            epochs=epochs,
            dataset_rows=dataset_rows,
            mean_tokens=mean_tokens,
            grad_accum=grad_accum,
            effective_batch=effective_batch,
            cloud=cloud,
            spot=spot,
        )
        report = service().estimate_report(query)
        if json_out:
            emit_json(report)
        else:
            _render_job(report)

    @app.command("plan")
    @error_boundary
    def plan_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Hub id, local model directory or built-in name.")],
        method: Annotated[MethodChoice, typer.Option("--method")] = MethodChoice.lora,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", min=1, help="Per-GPU micro-batch (default: chosen per GPU).")
        ] = None,
        max_seq_length: Annotated[int, typer.Option("--max-seq-length", min=1)] = 1024,
        gradient_checkpointing: Annotated[
            bool | None,
            typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Default: chosen per GPU."),
        ] = None,
        lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 16,
        lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, max=0.99)] = 0.05,
        loss: Annotated[LossChoice, typer.Option("--loss")] = LossChoice.fused,
        optimizer: Annotated[OptimizerChoice, typer.Option("--optimizer")] = OptimizerChoice.adamw,
        max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
        epochs: Annotated[float | None, typer.Option("--epochs", min=0.0)] = None,
        dataset_rows: Annotated[int | None, typer.Option("--dataset-rows", min=1)] = None,
        mean_tokens: Annotated[float | None, typer.Option("--mean-tokens", min=1.0)] = None,
        grad_accum: Annotated[int | None, typer.Option("--grad-accum", min=1, help="Default: chosen per GPU.")] = None,
        effective_batch: Annotated[
            int | None,
            typer.Option(
                "--effective-batch", min=1, help="Sequences per optimizer step, all GPUs (default: batch × accum)."
            ),
        ] = None,
        max_cost: Annotated[
            float | None, typer.Option("--max-cost", min=0.0, help="Budget, USD (expected cost).")
        ] = None,
        max_hours: Annotated[float | None, typer.Option("--max-hours", min=0.0, help="Wall-clock limit.")] = None,
        cloud: Annotated[list[str] | None, typer.Option("--cloud", help="Allowed cloud (repeatable).")] = None,
        gpu: Annotated[list[str] | None, typer.Option("--gpu", help="Allowed GPU type (repeatable).")] = None,
        gpu_count: Annotated[
            list[int] | None, typer.Option("--gpu-count", help="Allowed GPU count (repeatable).")
        ] = None,
        max_nodes: Annotated[
            int,
            typer.Option(
                "--max-nodes", min=1, max=64, help="Machines a job may span (8-GPU nodes; SkyPilot runs several)."
            ),
        ] = 1,
        spot: Annotated[
            bool | None, typer.Option("--spot/--no-spot", help="Spot only / on-demand only (default both).")
        ] = None,
        top: Annotated[int, typer.Option("--top", min=1, help="Options to show.")] = 15,
        offline: Annotated[
            bool, typer.Option("--offline", help="Price with the dated table only (no live Vast offers).")
        ] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Every (cloud, GPU, count, spot) choice that fits, ranked by expected total job cost.

        Prices: live Vast.ai offers when a Vast key is stored (cached 10 minutes), SkyPilot's cached
        catalogue when SkyPilot is installed, else the dated table (prices older than 30 days are starred).
        """
        from vibeml.estimate.report import PlanQuery

        query = _query(
            PlanQuery,
            model=model,
            method=method.value,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            gradient_checkpointing=gradient_checkpointing,
            lora_r=lora_r,
            lora_dropout=lora_dropout,
            loss=loss.value,
            optimizer=optimizer.value,
            max_steps=max_steps,
            epochs=epochs,
            dataset_rows=dataset_rows,
            mean_tokens=mean_tokens,
            grad_accum=grad_accum,
            effective_batch=effective_batch,
            max_cost=max_cost or None,
            max_hours=max_hours or None,
            clouds=cloud,
            gpus=gpu,
            gpu_counts=gpu_count,
            max_nodes=max_nodes,
            spot=spot,
            top=top,
        )
        report = service().plan_report(query, offline=offline)
        if json_out:
            emit_json(report)
        else:
            render_plan(report)

    @app.command("gpus")
    @error_boundary
    def gpus_cmd(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
        """GPU facts and the cheapest catalogued price per GPU-hour (on-demand and spot)."""

        report = service().gpu_report()
        if json_out:
            emit_json(report)
            return
        from rich.console import Console

        rows = []
        for r in report.gpus:
            od, sp = r.on_demand, r.spot
            rows.append(
                [
                    r.gpu,
                    f"{r.memory_gib:.0f}",
                    f"{r.bf16_tflops:.0f}",
                    f"{r.memory_bandwidth_gbs:.0f}",
                    f"${od.usd_per_gpu_hour:.2f} {od.cloud}" if od else "—",
                    f"${sp.usd_per_gpu_hour:.2f} {sp.cloud}" if sp else "—",
                    ", ".join(r.clouds),
                ]
            )
        console = Console()
        title = "GPUs (prices per GPU-hour, cheapest catalogued)"
        console.print(fit_table(GPU_COLUMNS, rows, console, title=title, header_style="bold"))
