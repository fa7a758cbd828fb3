"""Estimate and plan queries, and the pure functions that answer them with the typed reports of
``vibeml.reports`` (what `vibeml estimate/plan/gpus` and the MCP tools give).

The service resolves the architecture and the price table (I/O) and passes them in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import resolve_gpu
from vibeml.catalog.prices import PriceTable
from vibeml.estimate.cost import CostEstimator, estimate_job
from vibeml.estimate.memory import TrainingShape
from vibeml.estimate.planner import PlanConstraints, plan_training
from vibeml.estimate.throughput import Workload
from vibeml.models import StrictNumbers
from vibeml.reports import EstimateReport, GpuReport, PlanReport

__all__ = [
    "DEFAULT_STEPS",
    "EstimateQuery",
    "PlanQuery",
    "estimate_report",
    "gpu_report",
    "plan_report",
]

#: Steps assumed when neither max_steps nor the dataset size is given.
DEFAULT_STEPS = 1000


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


def estimate_report(query: EstimateQuery, arch: ModelArchitecture, prices: PriceTable) -> EstimateReport:
    """Memory, speed, time and cost of ``query`` (raises ConfigurationError/ResourceError)."""
    spec = resolve_gpu(query.gpu)
    workload, notes = query.workload()
    quote = None
    if query.cloud != "local":
        quote = CostEstimator(prices).best_quote(spec.name, query.gpu_count, query.spot, query.cloud)
    job = estimate_job(
        arch, query.shape(query.gpu_count, query.parallelism), spec, workload, quote, model_name=query.model
    )
    return EstimateReport.from_job(job, arch, notes)


def plan_report(query: PlanQuery, arch: ModelArchitecture, prices: PriceTable) -> PlanReport:
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
    return PlanReport.from_plan(plan, notes, query.top)


def gpu_report(prices: PriceTable) -> GpuReport:
    """GPU facts and the cheapest catalogued price per GPU-hour (on-demand and spot)."""
    return GpuReport.from_prices(prices)
