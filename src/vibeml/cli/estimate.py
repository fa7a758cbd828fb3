"""`vibeml estimate`, `vibeml plan` and `vibeml gpus`: thin front ends over vibeml.estimate.

Each command parses its options, makes one estimation call and renders a Rich table or ``--json``.
Nothing heavy is imported at module import (the estimator is imported inside the command bodies), and
errors are raised as ``VibeMLError`` subclasses for the app's error boundary to map to exit codes.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from vibeml.catalog.architectures import ModelArchitecture
    from vibeml.estimate.cost import JobEstimate
    from vibeml.estimate.planner import Plan

__all__ = ["register"]

#: Steps assumed when neither --max-steps nor dataset size is given.
DEFAULT_STEPS = 1000


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


def _money(x: float) -> float:
    return round(float(x), 4)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _arch(model: str) -> ModelArchitecture:
    from vibeml.catalog.architectures import resolve_architecture

    return resolve_architecture(model)


def _workload(
    max_steps: int | None, epochs: float | None, rows: int | None, mean_tokens: float | None, grad_accum: int
) -> tuple[Any, list[str]]:
    from vibeml.estimate.throughput import Workload

    notes: list[str] = []
    if max_steps is None and rows is None:
        max_steps = DEFAULT_STEPS
        notes.append(f"assumed max_steps={DEFAULT_STEPS} (give --max-steps or --dataset-rows)")
    workload = Workload(
        max_steps=max_steps,
        num_epochs=None if max_steps is not None else (epochs or 1.0),
        dataset_rows=rows,
        mean_tokens_per_row=mean_tokens,
        gradient_accumulation_steps=grad_accum,
    )
    return workload, notes


def _job_json(job: JobEstimate, arch: ModelArchitecture, extra_notes: list[str]) -> dict[str, Any]:
    m, t, s, c = job.memory, job.time, job.throughput, job.cost
    return {
        "model": job.model,
        "architecture": {
            "source": arch.source,
            "params": arch.param_count,
            "hidden_size": arch.hidden_size,
            "num_layers": arch.num_layers,
            "vocab_size": arch.vocab_size,
        },
        "method": job.method,
        "loss": job.loss,
        "gpu": job.gpu,
        "gpu_count": job.gpu_count,
        "batch_size": job.shape.batch_size,
        "max_seq_length": job.shape.seq_len,
        "gradient_checkpointing": job.shape.gradient_checkpointing,
        "lora_r": job.shape.lora_r if job.method != "full" else None,
        "total_gib": round(m.total_gib, 3),
        "allocated_gib": round(m.allocated_gib, 3),
        "reserved_gib": round(m.reserved_gib, 3),
        "required_gib": round(m.required_gib, 3),
        "capacity_gib": m.capacity_gib,
        "fits": m.fits,
        "headroom_gib": None if m.headroom_gib is None else round(m.headroom_gib, 3),
        "peak_phase": m.peak_phase,
        "breakdown": {k: round(v, 4) for k, v in m.breakdown.model_dump().items()},
        "tokens_per_s": round(s.tokens_per_s, 1),
        "step_time_s": round(s.step_time_s, 4),
        "bound": s.bound,
        "mfu": round(s.mfu, 4),
        "steps": t.steps,
        "tokens": t.tokens,
        "train_hours": round(t.train_s / 3600, 4),
        "setup_hours": round(t.setup.total_s / 3600, 4),
        "hours": round(c.estimated_duration_hours, 4),
        "min_hours": round(t.min_hours, 4),
        "max_hours": round(t.max_hours, 4),
        "cloud": job.cloud,
        "region": job.region,
        "spot": job.spot,
        "usd_per_gpu_hour": _money(job.quote.usd_per_gpu_hour) if job.quote else 0.0,
        "hourly_rate": _money(c.hourly_rate),
        "expected_cost": _money(c.expected_cost),
        "min_cost": _money(c.min_cost),
        "max_cost": _money(c.max_cost),
        "currency": "USD",
        "price_source": job.quote.source if job.quote else None,
        "price_as_of": job.quote.as_of.isoformat() if job.quote and job.quote.as_of else None,
        "assumptions": [*extra_notes, *job.assumptions],
    }


def _render_job(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    fits = data["fits"]
    verdict = "[green]fits[/]" if fits else "[red]does not fit[/]"
    console.print(
        f"[bold]{data['model']}[/] · {data['method']} · batch {data['batch_size']} × {data['max_seq_length']} · "
        f"{data['gpu_count']}× {data['gpu']} · loss={data['loss']}"
    )
    mem = Table(title="GPU memory (per GPU, GiB)", show_header=True, header_style="bold")
    mem.add_column("part")
    mem.add_column("GiB", justify="right")
    for key, value in data["breakdown"].items():
        if value >= 0.0005:
            mem.add_row(key.replace("_", " "), f"{value:.2f}")
    mem.add_row("[bold]total (nvidia-smi)[/]", f"[bold]{data['total_gib']:.2f}[/]")
    console.print(mem)
    console.print(
        f"{verdict} on {data['gpu']} ({data['capacity_gib']:.1f} GiB; needs {data['required_gib']:.1f}, "
        f"headroom {data['headroom_gib']:.1f} GiB; peak in the {data['peak_phase']} phase)"
    )
    console.print(
        f"speed {data['tokens_per_s']:,.0f} tokens/s ({data['bound']}-bound, MFU {data['mfu']:.0%}) · "
        f"{data['steps']:,} steps · training {data['train_hours']:.2f} h + setup {data['setup_hours']:.2f} h"
    )
    where = data["cloud"] if data["cloud"] == "local" else f"{data['cloud']}/{data['region']}"
    console.print(
        f"cost on {where}{' (spot)' if data['spot'] else ''}: [bold]${data['expected_cost']:.2f}[/] "
        f"(${data['min_cost']:.2f}–${data['max_cost']:.2f}) at ${data['hourly_rate']:.2f}/h"
    )
    for note in data["assumptions"]:
        console.print(f"[dim]· {note}[/]")


def _plan_json(plan: Plan, notes: list[str], top: int) -> dict[str, Any]:
    return {
        "model": plan.model,
        "options": [
            {
                "rank": o.rank,
                "cloud": o.cloud,
                "region": o.region,
                "gpu": o.gpu,
                "gpu_count": o.gpu_count,
                "spot": o.spot,
                "parallelism": o.parallelism,
                "usd_per_gpu_hour": _money(o.usd_per_gpu_hour),
                "hourly_rate": _money(o.hourly_rate),
                "hours": round(o.hours, 4),
                "tokens_per_s": round(o.tokens_per_s, 1),
                "memory_gib": round(o.memory_gib, 2),
                "capacity_gib": o.capacity_gib,
                "expected_cost": _money(o.expected_cost),
                "min_cost": _money(o.min_cost),
                "max_cost": _money(o.max_cost),
                "live_price": o.live_price,
            }
            for o in plan.options[:top]
        ],
        "total_options": len(plan.options),
        "rejected": [r.model_dump() for r in plan.rejected],
        "constraints": plan.constraints.model_dump(),
        "assumptions": notes,
    }


def _render_plan(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{data['model']}: cheapest total cost first", header_style="bold")
    for col, justify in (
        ("#", "right"),
        ("cloud", "left"),
        ("GPU", "left"),
        ("market", "left"),
        ("$/GPU-h", "right"),
        ("hours", "right"),
        ("tok/s", "right"),
        ("mem GiB", "right"),
        ("expected $", "right"),
        ("range $", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for o in data["options"]:
        table.add_row(
            str(o["rank"]),
            f"{o['cloud']}/{o['region']}",
            f"{o['gpu_count']}× {o['gpu']}",
            "spot" if o["spot"] else "on-demand",
            f"{o['usd_per_gpu_hour']:.2f}",
            f"{o['hours']:.2f}",
            f"{o['tokens_per_s']:,.0f}",
            f"{o['memory_gib']:.1f}/{o['capacity_gib']:.0f}",
            f"[bold]{o['expected_cost']:.2f}[/]",
            f"{o['min_cost']:.2f}–{o['max_cost']:.2f}",
        )
    console.print(table)
    shown = len(data["options"])
    if data["total_options"] > shown:
        console.print(f"[dim]{data['total_options'] - shown} more options (--top)[/]")
    reasons: dict[str, int] = {}
    for r in data["rejected"]:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    if reasons:
        console.print("[dim]dropped: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in reasons.items()) + "[/]")
    for note in data["assumptions"]:
        console.print(f"[dim]· {note}[/]")


def register(app: typer.Typer) -> None:
    """Add the `estimate`, `plan` and `gpus` commands to ``app``."""

    @app.command("estimate")
    def estimate_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Hub id, local model directory or built-in name.")],
        method: Annotated[MethodChoice, typer.Option("--method", help="lora, qlora or full.")] = MethodChoice.lora,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Per-device batch size.")] = 4,
        max_seq_length: Annotated[int, typer.Option("--max-seq-length", min=1, help="Tokens per sequence.")] = 1024,
        gradient_checkpointing: Annotated[
            bool, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations.")
        ] = True,
        lora_r: Annotated[int, typer.Option("--lora-r", min=1, help="LoRA rank.")] = 16,
        lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, max=0.99, help="LoRA dropout.")] = 0.05,
        gpu: Annotated[
            str, typer.Option("--gpu", help="GPU type (any alias: 'A100-80GB', 'RTX 4090', '4090').")
        ] = "H100",
        gpu_count: Annotated[int, typer.Option("--gpu-count", min=1, help="GPUs (DDP unless --parallelism fsdp).")] = 1,
        parallelism: Annotated[ParallelismChoice, typer.Option("--parallelism")] = ParallelismChoice.ddp,
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
        grad_accum: Annotated[int, typer.Option("--grad-accum", min=1, help="Gradient accumulation steps.")] = 1,
        cloud: Annotated[
            str | None, typer.Option("--cloud", help="Price on this cloud (default: cheapest; 'local').")
        ] = None,
        spot: Annotated[bool, typer.Option("--spot/--no-spot", help="Spot/interruptible price.")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Memory, speed, time and cost of one fine-tune on one GPU choice."""
        from vibeml.catalog.gpus import resolve_gpu
        from vibeml.estimate.cost import CostEstimator, estimate_job
        from vibeml.estimate.memory import TrainingShape

        spec = resolve_gpu(gpu)
        arch = _arch(model)
        shape = TrainingShape(
            method=method.value,
            batch_size=batch_size,
            seq_len=max_seq_length,
            gradient_checkpointing=gradient_checkpointing,
            lora_r=lora_r,
            lora_dropout=lora_dropout,
            loss=loss.value,
            optimizer=optimizer.value,
            gpu_count=gpu_count,
            parallelism=parallelism.value,
        )
        workload, notes = _workload(max_steps, epochs, dataset_rows, mean_tokens, grad_accum)
        quote = None
        if cloud != "local":
            quote = CostEstimator().best_quote(spec.name, gpu_count, spot, cloud)
        job = estimate_job(arch, shape, spec, workload, quote, model_name=model)
        data = _job_json(job, arch, notes)
        if json_out:
            _emit_json(data)
        else:
            _render_job(data)

    @app.command("plan")
    def plan_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Hub id, local model directory or built-in name.")],
        method: Annotated[MethodChoice, typer.Option("--method")] = MethodChoice.lora,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
        max_seq_length: Annotated[int, typer.Option("--max-seq-length", min=1)] = 1024,
        gradient_checkpointing: Annotated[
            bool, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing")
        ] = True,
        lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 16,
        lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, max=0.99)] = 0.05,
        loss: Annotated[LossChoice, typer.Option("--loss")] = LossChoice.fused,
        optimizer: Annotated[OptimizerChoice, typer.Option("--optimizer")] = OptimizerChoice.adamw,
        max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
        epochs: Annotated[float | None, typer.Option("--epochs", min=0.0)] = None,
        dataset_rows: Annotated[int | None, typer.Option("--dataset-rows", min=1)] = None,
        mean_tokens: Annotated[float | None, typer.Option("--mean-tokens", min=1.0)] = None,
        grad_accum: Annotated[int, typer.Option("--grad-accum", min=1)] = 1,
        max_cost: Annotated[
            float | None, typer.Option("--max-cost", min=0.0, help="Budget, USD (expected cost).")
        ] = None,
        max_hours: Annotated[float | None, typer.Option("--max-hours", min=0.0, help="Wall-clock limit.")] = None,
        cloud: Annotated[list[str] | None, typer.Option("--cloud", help="Allowed cloud (repeatable).")] = None,
        gpu: Annotated[list[str] | None, typer.Option("--gpu", help="Allowed GPU type (repeatable).")] = None,
        gpu_count: Annotated[
            list[int] | None, typer.Option("--gpu-count", help="Allowed GPU count (repeatable).")
        ] = None,
        spot: Annotated[
            bool | None, typer.Option("--spot/--no-spot", help="Spot only / on-demand only (default both).")
        ] = None,
        top: Annotated[int, typer.Option("--top", min=1, help="Options to show.")] = 15,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Every (cloud, GPU, count, spot) choice that fits, ranked by expected total job cost."""
        from vibeml.catalog.prices import load_price_table
        from vibeml.estimate.memory import TrainingShape
        from vibeml.estimate.planner import PlanConstraints, plan_training

        arch = _arch(model)
        shape = TrainingShape(
            method=method.value,
            batch_size=batch_size,
            seq_len=max_seq_length,
            gradient_checkpointing=gradient_checkpointing,
            lora_r=lora_r,
            lora_dropout=lora_dropout,
            loss=loss.value,
            optimizer=optimizer.value,
        )
        workload, notes = _workload(max_steps, epochs, dataset_rows, mean_tokens, grad_accum)
        constraints = PlanConstraints(
            max_cost=max_cost or None,
            max_hours=max_hours or None,
            clouds=tuple(cloud) if cloud else None,
            spot=spot,
            gpu_types=tuple(gpu) if gpu else None,
            **({"gpu_counts": tuple(gpu_count)} if gpu_count else {}),
        )
        plan = plan_training(arch, shape, workload, load_price_table(), constraints, model_name=model)
        data = _plan_json(plan, notes, top)
        if json_out:
            _emit_json(data)
        else:
            _render_plan(data)

    @app.command("gpus")
    def gpus_cmd(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
        """GPU facts and the cheapest catalogued price per GPU-hour (on-demand and spot)."""
        from vibeml.catalog.gpus import list_gpus
        from vibeml.catalog.prices import load_price_table

        prices = load_price_table()
        rows: list[dict[str, Any]] = []
        for g in list_gpus():
            od = prices.cheapest(g.name, spot=False)
            sp = prices.cheapest(g.name, spot=True)
            rows.append(
                {
                    "gpu": g.name,
                    "memory_gib": g.memory_gib,
                    "bf16_tflops": g.bf16_tflops,
                    "memory_bandwidth_gbs": g.memory_bandwidth_gbs,
                    "architecture": g.architecture,
                    "bf16": g.bf16,
                    "aliases": list(g.aliases),
                    "on_demand": None
                    if od is None
                    else {"usd_per_gpu_hour": _money(od.usd_per_gpu_hour), "cloud": od.cloud, "region": od.region},
                    "spot": None
                    if sp is None
                    else {"usd_per_gpu_hour": _money(sp.usd_per_gpu_hour), "cloud": sp.cloud, "region": sp.region},
                    "clouds": sorted({q.cloud for q in prices.filter(gpu=g.name)}),
                }
            )
        if json_out:
            as_of = sorted({q.as_of.isoformat() for q in prices.quotes if q.as_of})
            _emit_json({"gpus": rows, "prices_as_of": as_of})
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="GPUs (prices per GPU-hour, cheapest catalogued)", header_style="bold")
        for col, justify in (
            ("GPU", "left"),
            ("GiB", "right"),
            ("bf16 TFLOP/s", "right"),
            ("GB/s", "right"),
            ("on-demand", "right"),
            ("spot", "right"),
            ("clouds", "left"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for r in rows:
            od, sp = r["on_demand"], r["spot"]
            table.add_row(
                r["gpu"],
                f"{r['memory_gib']:.0f}",
                f"{r['bf16_tflops']:.0f}",
                f"{r['memory_bandwidth_gbs']:.0f}",
                f"${od['usd_per_gpu_hour']:.2f} {od['cloud']}" if od else "—",
                f"${sp['usd_per_gpu_hour']:.2f} {sp['cloud']}" if sp else "—",
                ", ".join(r["clouds"]),
            )
        Console().print(table)
