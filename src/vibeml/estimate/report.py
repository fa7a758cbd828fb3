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
from vibeml.estimate.autoconfig import AutoConfig, BatchPolicy, Strategy, choose_config
from vibeml.estimate.cost import CostEstimator, estimate_job
from vibeml.estimate.memory import TrainingShape
from vibeml.estimate.planner import PlanConstraints, plan_training
from vibeml.estimate.throughput import Workload
from vibeml.exceptions import ConfigurationError
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
#: The per-GPU batch the effective batch defaults from (the trainer's default batch_size).
DEFAULT_BATCH = 4


class _ShapeQuery(StrictNumbers):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(min_length=1, max_length=1024, description="Hub id, local model dir or built-in name.")
    method: Literal["lora", "qlora", "full"] = "lora"
    batch_size: int | None = Field(None, ge=1, le=65536, description="Per-GPU micro-batch; None = chosen.")
    max_seq_length: int = Field(1024, ge=1, le=4_194_304)
    gradient_checkpointing: bool | None = Field(None, description="None = chosen per GPU.")
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
    grad_accum: int | None = Field(None, ge=1, le=4096, description="None = chosen.")
    effective_batch: int | None = Field(
        None, ge=1, le=1_048_576, description="Sequences per optimizer step over all GPUs (default: batch × accum)."
    )

    def policy(self, gpu_count: int = 1, strategy: Strategy | None = None) -> BatchPolicy:
        """The effective batch (given, else batch_size × grad_accum × GPUs with defaults 4 and 1) and what
        was fixed explicitly."""
        eb = self.effective_batch or (self.batch_size or DEFAULT_BATCH) * (self.grad_accum or 1) * gpu_count
        return BatchPolicy(
            effective_batch=eb,
            micro_batch=self.batch_size,
            grad_accum=self.grad_accum,
            gradient_checkpointing=self.gradient_checkpointing,
            strategy=strategy,
        )

    def shape(self, gpu_count: int = 1, parallelism: Literal["ddp", "fsdp"] = "ddp") -> TrainingShape:
        return TrainingShape(
            method=self.method,
            batch_size=self.batch_size or DEFAULT_BATCH,
            seq_len=self.max_seq_length,
            gradient_checkpointing=True if self.gradient_checkpointing is None else self.gradient_checkpointing,
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
            gradient_accumulation_steps=self.grad_accum or 1,
        )
        return workload, notes


class EstimateQuery(_ShapeQuery):
    """One fine-tune on one GPU choice."""

    gpu: str = Field("H100", description="GPU type (any alias: 'A100-80GB', 'RTX 4090', '4090').")
    gpu_count: int = Field(1, ge=1, le=4096)
    parallelism: Literal["ddp", "fsdp"] | None = Field(None, description="Strategy on several GPUs; None = chosen.")
    cloud: str | None = Field(None, description="Price on this cloud (default: cheapest; 'local' = free).")
    spot: bool = False


class PlanQuery(_ShapeQuery):
    """Every allowed choice, ranked by expected total cost."""

    max_cost: float | None = Field(None, gt=0, le=1_000_000)
    max_hours: float | None = Field(None, gt=0, le=100_000)
    clouds: list[str] | None = None
    gpus: list[str] | None = None
    gpu_counts: list[int] | None = None
    max_nodes: int = Field(
        1, ge=1, le=64, description="Machines a job may span (multi-node: SkyPilot); 1 = one machine."
    )
    spot: bool | None = Field(None, description="True: spot only; False: on-demand only; None: both.")
    top: int = Field(15, ge=1, le=1000)


def estimate_report(query: EstimateQuery, arch: ModelArchitecture, prices: PriceTable) -> EstimateReport:
    """Memory, speed, time and cost of ``query`` on its GPU choice, with the configuration chosen for it
    (:func:`~vibeml.estimate.autoconfig.choose_config`: what the query leaves open of micro-batch,
    accumulation, checkpointing and strategy) and what was tried. Raises ConfigurationError (the effective
    batch does not split over the GPUs) or ResourceError (no price)."""
    spec = resolve_gpu(query.gpu)
    workload, notes = query.workload()
    quote = None
    if query.cloud != "local":
        quote = CostEstimator(prices).best_quote(spec.name, query.gpu_count, query.spot, query.cloud)
    strategy: Strategy | None = query.parallelism if query.gpu_count > 1 else None
    policy = query.policy(query.gpu_count, strategy)
    base = query.shape(query.gpu_count, query.parallelism or "ddp")
    cfg = choose_config(arch, base, workload, spec, query.gpu_count, policy)
    if isinstance(cfg, AutoConfig):
        shape, workload, accum, reason, trials = cfg.shape, cfg.workload, cfg.grad_accum, cfg.reason, cfg.trials
    elif cfg.reason == "does_not_fit":
        # Show the leanest configuration tried, and that it does not fit.
        lean = min(cfg.trials, key=lambda t: t.memory_gib)
        shape = base.model_copy(
            update={
                "batch_size": lean.micro_batch,
                "gradient_checkpointing": lean.gradient_checkpointing,
                "parallelism": "fsdp" if lean.strategy == "fsdp" else "ddp",
            }
        )
        accum, reason, trials = lean.grad_accum, cfg.detail, cfg.trials
        workload = workload.model_copy(update={"gradient_accumulation_steps": accum})
    else:
        raise ConfigurationError(
            cfg.detail,
            {"effective_batch": policy.effective_batch, "gpu_count": query.gpu_count},
            "Give an effective batch that is a multiple of the GPU count (--effective-batch), or leave "
            "--batch-size/--grad-accum open for VibeML to choose.",
        )
    job = estimate_job(arch, shape, spec, workload, quote, model_name=query.model)
    return EstimateReport.from_job(job, arch, notes, grad_accum=accum, config_reason=reason, trials=trials)


def plan_report(query: PlanQuery, arch: ModelArchitecture, prices: PriceTable) -> PlanReport:
    """The ranked plan for ``query`` (raises BudgetExceededError/ResourceError when nothing fits)."""
    workload, notes = query.workload()
    constraints = PlanConstraints(
        max_cost=query.max_cost,
        max_hours=query.max_hours,
        clouds=tuple(query.clouds) if query.clouds else None,
        spot=query.spot,
        gpu_types=tuple(query.gpus) if query.gpus else None,
        max_nodes=query.max_nodes,
        **({"gpu_counts": tuple(query.gpu_counts)} if query.gpu_counts else {}),
    )
    plan = plan_training(
        arch, query.shape(), workload, prices, constraints, model_name=query.model, policy=query.policy()
    )
    return PlanReport.from_plan(plan, notes, query.top)


def gpu_report(prices: PriceTable) -> GpuReport:
    """GPU facts and the cheapest catalogued price per GPU-hour (on-demand and spot)."""
    return GpuReport.from_prices(prices)
