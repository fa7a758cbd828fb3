"""Estimate and plan reports: the JSON-ready answers `vibeml estimate/plan/gpus` and the MCP tools give.

Pure functions over pydantic models: the service resolves the architecture and the price table (I/O)
and passes them in.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import list_gpus, resolve_gpu
from vibeml.catalog.prices import PriceTable
from vibeml.estimate.cost import CostEstimator, JobEstimate, estimate_job
from vibeml.estimate.memory import TrainingShape
from vibeml.estimate.planner import Plan, PlanConstraints, plan_training
from vibeml.estimate.throughput import Workload
from vibeml.models import StrictNumbers

__all__ = [
    "DEFAULT_STEPS",
    "EstimateQuery",
    "PlanQuery",
    "estimate_report",
    "gpu_report",
    "plan_json",
    "plan_report",
]

#: Steps assumed when neither max_steps nor the dataset size is given.
DEFAULT_STEPS = 1000


def _money(x: float) -> float:
    return round(float(x), 4)


class _ShapeQuery(StrictNumbers):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(min_length=1, max_length=1024, description="Hub id, local model dir or built-in name.")
    method: Literal["lora", "qlora", "full"] = "lora"
    batch_size: int = Field(4, ge=1, le=65536)
    max_seq_length: int = Field(1024, ge=1, le=4_194_304)
    gradient_checkpointing: bool = True
    lora_r: int = Field(16, ge=1, le=65536)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    loss: Literal["fused", "standard"] = Field(
        "fused", description="fused = VibeML's trainer (TRL fused LM head); standard = plain model(labels=…)."
    )
    optimizer: Literal["adamw", "adamw_8bit"] = "adamw"
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    epochs: float | None = Field(None, gt=0, le=1000)
    dataset_rows: int | None = Field(None, ge=1, le=10**12)
    mean_tokens: float | None = Field(None, ge=1.0, le=4_194_304)
    grad_accum: int = Field(1, ge=1, le=4096)

    def shape(self, gpu_count: int = 1, parallelism: Literal["ddp", "fsdp"] = "ddp") -> TrainingShape:
        return TrainingShape(
            method=self.method,
            batch_size=self.batch_size,
            seq_len=self.max_seq_length,
            gradient_checkpointing=self.gradient_checkpointing,
            lora_r=self.lora_r,
            lora_dropout=self.lora_dropout,
            loss=self.loss,
            optimizer=self.optimizer,
            gpu_count=gpu_count,
            parallelism=parallelism,
        )

    def workload(self) -> tuple[Workload, list[str]]:
        notes: list[str] = []
        max_steps = self.max_steps
        if max_steps is None and self.dataset_rows is None:
            max_steps = DEFAULT_STEPS
            notes.append(f"assumed max_steps={DEFAULT_STEPS} (give max_steps or dataset_rows)")
        workload = Workload(
            max_steps=max_steps,
            num_epochs=None if max_steps is not None else (self.epochs or 1.0),
            dataset_rows=self.dataset_rows,
            mean_tokens_per_row=self.mean_tokens,
            gradient_accumulation_steps=self.grad_accum,
        )
        return workload, notes


class EstimateQuery(_ShapeQuery):
    """One fine-tune on one GPU choice."""

    gpu: str = Field("H100", description="GPU type (any alias: 'A100-80GB', 'RTX 4090', '4090').")
    gpu_count: int = Field(1, ge=1, le=4096)
    parallelism: Literal["ddp", "fsdp"] = "ddp"
    cloud: str | None = Field(None, description="Price on this cloud (default: cheapest; 'local' = free).")
    spot: bool = False


class PlanQuery(_ShapeQuery):
    """Every allowed choice, ranked by expected total cost."""

    max_cost: float | None = Field(None, gt=0, le=1_000_000)
    max_hours: float | None = Field(None, gt=0, le=100_000)
    clouds: list[str] | None = None
    gpus: list[str] | None = None
    gpu_counts: list[int] | None = None
    spot: bool | None = Field(None, description="True: spot only; False: on-demand only; None: both.")
    top: int = Field(15, ge=1, le=1000)


def estimate_report(query: EstimateQuery, arch: ModelArchitecture, prices: PriceTable) -> dict[str, Any]:
    """Memory, speed, time and cost of ``query`` (raises ConfigurationError/ResourceError)."""
    spec = resolve_gpu(query.gpu)
    workload, notes = query.workload()
    quote = None
    if query.cloud != "local":
        quote = CostEstimator(prices).best_quote(spec.name, query.gpu_count, query.spot, query.cloud)
    job = estimate_job(
        arch, query.shape(query.gpu_count, query.parallelism), spec, workload, quote, model_name=query.model
    )
    return _job_json(job, arch, notes)


def plan_report(query: PlanQuery, arch: ModelArchitecture, prices: PriceTable) -> dict[str, Any]:
    """The ranked plan for ``query`` (raises BudgetExceededError/ResourceError when nothing fits)."""
    workload, notes = query.workload()
    constraints = PlanConstraints(
        max_cost=query.max_cost,
        max_hours=query.max_hours,
        clouds=tuple(query.clouds) if query.clouds else None,
        spot=query.spot,
        gpu_types=tuple(query.gpus) if query.gpus else None,
        **({"gpu_counts": tuple(query.gpu_counts)} if query.gpu_counts else {}),
    )
    plan = plan_training(arch, query.shape(), workload, prices, constraints, model_name=query.model)
    return plan_json(plan, notes, query.top)


def gpu_report(prices: PriceTable) -> dict[str, Any]:
    """GPU facts and the cheapest catalogued price per GPU-hour (on-demand and spot)."""
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
    as_of = sorted({q.as_of.isoformat() for q in prices.quotes if q.as_of})
    return {"gpus": rows, "prices_as_of": as_of}


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


def plan_json(plan: Plan, notes: list[str], top: int) -> dict[str, Any]:
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
