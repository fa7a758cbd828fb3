"""What the service returns, typed once: every report the CLI renders, ``--json`` dumps and MCP returns.

The CLI reads these models' attributes to draw its tables, ``--json`` prints ``model_dump(mode="json")`` of
the same model, and the MCP tools return them as they are (their output schema is the model's). Reports
are frozen and forbid unknown fields, so a field added in one place and not another fails a test.

Importing this module loads no backend, workflow or service code (the MCP server lists its tools from it).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.catalog.architectures import ArchitectureSource
from vibeml.config.budget import BudgetCheck, BudgetStatus
from vibeml.estimate.autoconfig import ConfigTrial, Strategy
from vibeml.estimate.memory import LossImpl, MemoryBreakdown, Method
from vibeml.estimate.planner import Plan, PlanConstraints, PlanOption, RejectedOption
from vibeml.estimate.prices import PriceInfo
from vibeml.models import CostEstimate, LaunchChoice, TrainingRequest
from vibeml.vast.models import Offer

if TYPE_CHECKING:
    from vibeml.catalog.architectures import ModelArchitecture
    from vibeml.catalog.prices import PriceTable
    from vibeml.estimate.cost import JobEstimate

__all__ = [
    "ArchitectureSummary",
    "EstimateReport",
    "GpuPrice",
    "GpuRecommendation",
    "GpuReport",
    "GpuRow",
    "LaunchPreview",
    "Offer",
    "OffersReport",
    "OrphanedResource",
    "PlanReport",
    "PlanRow",
    "ReconcileReport",
    "SpendingLine",
    "SpendingReport",
]


def _money(x: float) -> float:
    return round(float(x), 4)


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------------------------------ estimate


class ArchitectureSummary(_Report):
    """The model's shape as the estimator resolved it (``source``: built-in table, local dir, hub, …)."""

    source: ArchitectureSource
    params: int
    hidden_size: int
    num_layers: int
    vocab_size: int


class EstimateReport(_Report):
    """Memory, speed, time and cost of one fine-tune on one GPU choice (`vibeml estimate`)."""

    model: str
    architecture: ArchitectureSummary
    method: Method
    loss: LossImpl
    gpu: str
    gpu_count: int
    batch_size: int
    max_seq_length: int
    gradient_checkpointing: bool
    grad_accum: int = 1
    effective_batch: int = Field(1, description="batch_size × grad_accum × gpu_count.")
    strategy: Strategy = "single"
    config_reason: str | None = Field(None, description="Why this configuration (when VibeML chose it).")
    trials: list[ConfigTrial] = Field(default_factory=list, description="Configurations tried (when chosen).")
    lora_r: int | None = Field(description="None for a full fine-tune.")
    total_gib: float = Field(description="What nvidia-smi would show, per GPU.")
    allocated_gib: float
    reserved_gib: float
    required_gib: float
    capacity_gib: float | None
    fits: bool
    headroom_gib: float | None
    peak_phase: Literal["loss", "backward", "optimizer"]
    breakdown: MemoryBreakdown = Field(description="GiB per part; the parts sum to total_gib.")
    tokens_per_s: float
    step_time_s: float
    bound: Literal["compute", "memory", "host"]
    mfu: float
    steps: int
    tokens: float
    train_hours: float
    setup_hours: float
    hours: float
    min_hours: float
    max_hours: float
    cloud: str | None
    region: str | None
    spot: bool
    usd_per_gpu_hour: float
    hourly_rate: float
    expected_cost: float
    min_cost: float
    max_cost: float
    currency: Literal["USD"] = "USD"
    price_source: str | None
    price_as_of: date | None
    assumptions: list[str]

    @classmethod
    def from_job(
        cls,
        job: JobEstimate,
        arch: ModelArchitecture,
        extra_notes: list[str],
        *,
        grad_accum: int = 1,
        config_reason: str | None = None,
        trials: tuple[ConfigTrial, ...] = (),
    ) -> EstimateReport:
        m, t, s, c = job.memory, job.time, job.throughput, job.cost
        return cls(
            model=job.model,
            architecture=ArchitectureSummary(
                source=arch.source,
                params=arch.param_count,
                hidden_size=arch.hidden_size,
                num_layers=arch.num_layers,
                vocab_size=arch.vocab_size,
            ),
            method=job.method,
            loss=job.loss,
            gpu=job.gpu,
            gpu_count=job.gpu_count,
            batch_size=job.shape.batch_size,
            max_seq_length=job.shape.seq_len,
            gradient_checkpointing=job.shape.gradient_checkpointing,
            grad_accum=grad_accum,
            effective_batch=job.shape.batch_size * grad_accum * job.gpu_count,
            strategy="single" if job.gpu_count == 1 else job.shape.parallelism,
            config_reason=config_reason,
            trials=list(trials),
            lora_r=job.shape.lora_r if job.method != "full" else None,
            total_gib=round(m.total_gib, 3),
            allocated_gib=round(m.allocated_gib, 3),
            reserved_gib=round(m.reserved_gib, 3),
            required_gib=round(m.required_gib, 3),
            capacity_gib=m.capacity_gib,
            fits=job.fits,
            headroom_gib=None if m.headroom_gib is None else round(m.headroom_gib, 3),
            peak_phase=m.peak_phase,
            breakdown=MemoryBreakdown(**{k: round(v, 4) for k, v in m.breakdown.model_dump().items()}),
            tokens_per_s=round(s.tokens_per_s, 1),
            step_time_s=round(s.step_time_s, 4),
            bound=s.bound,
            mfu=round(s.mfu, 4),
            steps=t.steps,
            tokens=t.tokens,
            train_hours=round(t.train_s / 3600, 4),
            setup_hours=round(t.setup.total_s / 3600, 4),
            hours=round(c.estimated_duration_hours, 4),
            min_hours=round(t.min_hours, 4),
            max_hours=round(t.max_hours, 4),
            cloud=job.cloud,
            region=job.region,
            spot=job.spot,
            usd_per_gpu_hour=_money(job.quote.usd_per_gpu_hour) if job.quote else 0.0,
            hourly_rate=_money(c.hourly_rate),
            expected_cost=_money(c.expected_cost),
            min_cost=_money(c.min_cost),
            max_cost=_money(c.max_cost),
            price_source=job.quote.source if job.quote else None,
            price_as_of=job.quote.as_of if job.quote else None,
            assumptions=[*extra_notes, *job.assumptions],
        )


# ---------------------------------------------------------------------------------------------- plan


class PlanRow(_Report):
    """One ranked choice of a plan."""

    rank: int
    cloud: str
    region: str
    gpu: str
    gpu_count: int = Field(description="GPUs per node.")
    num_nodes: int = 1
    spot: bool
    parallelism: Literal["single", "ddp", "fsdp"] = Field(description="Same as strategy (kept for old readers).")
    strategy: Strategy
    micro_batch: int = Field(description="The trainer's per-GPU batch_size.")
    grad_accum: int
    gradient_checkpointing: bool
    effective_batch: int
    config_reason: str
    usd_per_gpu_hour: float
    hourly_rate: float
    hours: float
    tokens_per_s: float
    memory_gib: float
    capacity_gib: float
    expected_cost: float
    min_cost: float
    max_cost: float
    live_price: bool

    @classmethod
    def from_option(cls, o: PlanOption) -> PlanRow:
        return cls(
            rank=o.rank,
            cloud=o.cloud,
            region=o.region,
            gpu=o.gpu,
            gpu_count=o.gpu_count,
            num_nodes=o.num_nodes,
            spot=o.spot,
            parallelism=o.parallelism,
            strategy=o.strategy,
            micro_batch=o.micro_batch,
            grad_accum=o.grad_accum,
            gradient_checkpointing=o.gradient_checkpointing,
            effective_batch=o.effective_batch,
            config_reason=o.config_reason,
            usd_per_gpu_hour=_money(o.usd_per_gpu_hour),
            hourly_rate=_money(o.hourly_rate),
            hours=round(o.hours, 4),
            tokens_per_s=round(o.tokens_per_s, 1),
            memory_gib=round(o.memory_gib, 2),
            capacity_gib=o.capacity_gib,
            expected_cost=_money(o.expected_cost),
            min_cost=_money(o.min_cost),
            max_cost=_money(o.max_cost),
            live_price=o.live_price,
        )


class PlanReport(_Report):
    """Choices that fit, cheapest expected total cost first, and the ones dropped with reasons (`vibeml plan`)."""

    model: str
    options: list[PlanRow] = Field(description="The first `top` options.")
    total_options: int = Field(description="How many options fit in all.")
    rejected: list[RejectedOption]
    constraints: PlanConstraints
    assumptions: list[str]
    prices: PriceInfo | None = Field(
        None, description="Where the prices came from (table date, live Vast offers and their age, stale rows)."
    )

    @classmethod
    def from_plan(cls, plan: Plan, notes: list[str], top: int) -> PlanReport:
        return cls(
            model=plan.model,
            options=[PlanRow.from_option(o) for o in plan.options[:top]],
            total_options=len(plan.options),
            rejected=list(plan.rejected),
            constraints=plan.constraints,
            assumptions=list(notes),
        )


# ---------------------------------------------------------------------------------------------- GPUs


class GpuPrice(_Report):
    usd_per_gpu_hour: float
    cloud: str
    region: str


class GpuRow(_Report):
    """One GPU's facts and its cheapest catalogued prices."""

    gpu: str
    memory_gib: float
    bf16_tflops: float
    memory_bandwidth_gbs: float
    architecture: str
    bf16: bool
    aliases: list[str]
    on_demand: GpuPrice | None
    spot: GpuPrice | None
    clouds: list[str]


class GpuReport(_Report):
    """GPU facts and the cheapest catalogued price per GPU-hour (`vibeml gpus`)."""

    gpus: list[GpuRow]
    prices_as_of: list[date]

    @classmethod
    def from_prices(cls, prices: PriceTable) -> GpuReport:
        from vibeml.catalog.gpus import list_gpus

        def price(spot: bool, gpu: str) -> GpuPrice | None:
            q = prices.cheapest(gpu, spot=spot)
            if q is None:
                return None
            return GpuPrice(usd_per_gpu_hour=_money(q.usd_per_gpu_hour), cloud=q.cloud, region=q.region)

        rows = [
            GpuRow(
                gpu=g.name,
                memory_gib=g.memory_gib,
                bf16_tflops=g.bf16_tflops,
                memory_bandwidth_gbs=g.memory_bandwidth_gbs,
                architecture=g.architecture,
                bf16=g.bf16,
                aliases=list(g.aliases),
                on_demand=price(False, g.name),
                spot=price(True, g.name),
                clouds=sorted({q.cloud for q in prices.filter(gpu=g.name)}),
            )
            for g in list_gpus()
        ]
        return cls(gpus=rows, prices_as_of=sorted({q.as_of for q in prices.quotes if q.as_of}))


class GpuRecommendation(_Report):
    """The cheapest GPU type that fits a LoRA (QLoRA with ``use_quantization``) fine-tune of ``model``."""

    model: str
    use_quantization: bool
    gpu_type: str
    memory_required_gib: float


class OffersReport(_Report):
    """Live Vast.ai offers for a query (`vibeml vast offers`, MCP `search_gpu_offers`)."""

    query: str
    type: str
    order: str
    offers: list[Offer]


# -------------------------------------------------------------------------------------------- launch


class LaunchPreview(_Report):
    """What a launch would do, starting nothing: the request as it would run, the estimate, the plan and
    choice (paid backends) and the budget gate's outcome with its warnings."""

    request: TrainingRequest
    estimate: CostEstimate
    plan: PlanReport | None
    choice: LaunchChoice | None
    trainer_max_runtime_seconds: float | None = Field(description="Where the trainer checkpoints and stops.")
    budget: BudgetCheck


# -------------------------------------------------------------------------------------------- money


class SpendingLine(_Report):
    """One job's line in the ledger: estimated when launched, accrued while it runs, final when over."""

    job_id: str
    backend: str
    month: str
    estimated_cost: float
    accrued_cost: float
    final_cost: float | None
    max_cost: float | None
    created_at: datetime
    updated_at: datetime

    @property
    def cost(self) -> float:
        """What the job cost (final) or has cost so far (accrued)."""
        return self.final_cost if self.final_cost is not None else self.accrued_cost


class SpendingReport(_Report):
    """The budget (caps, this month's figures) and the ledger of ``month`` (`vibeml spending`)."""

    month: str = Field(description="YYYY-MM, or 'all'.")
    budget: BudgetStatus
    ledger: list[SpendingLine]
    total: float = Field(description="Sum of the lines' final (else accrued) costs.")


class OrphanedResource(_Report):
    """A paid resource no live job uses: VibeML's own (``owned``: a recorded launch of this installation
    whose job is over) or someone else's (left alone, never destroyed)."""

    backend: str
    id: str
    label: str
    reason: str
    owned: bool = Field(True, description="A recorded launch of this installation: cleanup may destroy it.")
    job_id: str | None = None
    status: str | None = None
    dph_total: float | None = None
    destroyed: bool | None = Field(None, description="Cleanup: whether it was destroyed (None: not asked).")


class ReconcileReport(_Report):
    """What paid backends left behind, and (``cleanup``) what was destroyed."""

    cleanup: bool
    orphans: list[OrphanedResource] = Field(description="This installation's leftovers (cleanup destroys them).")
    left_alone: list[OrphanedResource] = Field(
        default_factory=list,
        description="Resources on the same account that are not this installation's: listed, never destroyed.",
    )
