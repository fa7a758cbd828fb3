"""Cost: the seed's ``CostEstimator`` and the request-level estimate (memory + time + money).

Total job cost = (setup + training hours) × hourly rate (all GPUs) + storage for the job's duration.
The range comes from the time model's spread (``TRAIN_TIME_RANGE``, ``SETUP_TIME_RANGE``) and, on spot
capacity, from interruptions (restarts repeat setup and lose work since the last checkpoint).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import GPUSpec, resolve_gpu
from vibeml.catalog.prices import CLOUDS, PriceQuote, PriceTable, load_price_table
from vibeml.estimate.memory import LossImpl, MemoryEstimate, Method, TrainingShape, estimate_memory
from vibeml.estimate.throughput import (
    SetupProfile,
    ThroughputEstimate,
    TimeEstimate,
    Workload,
    estimate_training_time,
)
from vibeml.exceptions import ConfigurationError, ResourceError
from vibeml.models import CostEstimate, TrainingRequest

__all__ = [
    "BACKEND_CLOUDS",
    "CostEstimator",
    "DatasetStats",
    "JobEstimate",
    "estimate_job",
    "job_disk_gb",
    "method_for_workflow",
    "setup_profile_for",
    "shape_from_request",
    "summarize",
    "workload_from_request",
]

#: Expected extra run time on spot capacity per interruption-hour (a restart repeats provisioning and
#: install and loses half a checkpoint interval); the max assumes three times the expected rate.
SPOT_MAX_FACTOR = 3.0
#: On-demand billing granularity and small extras (egress, idle minutes before autostop) for max_cost.
ON_DEMAND_MAX_EXTRA = 0.05
#: Base container/image disk, GB.
BASE_DISK_GB = 30.0

#: Which cloud a backend bills on (None: any cloud the request allows; "local": free here).
BACKEND_CLOUDS: dict[str, str | None] = {"local": "local", "vast": "vast", "skypilot": None}


class DatasetStats(BaseModel):
    """What is known about the dataset when estimating (counted tokens beat row × mean estimates)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int | None = Field(None, ge=1)
    mean_tokens_per_row: float | None = Field(None, gt=0)
    total_tokens: int | None = Field(None, ge=1, description="Counted tokens of one epoch.")


class JobEstimate(BaseModel):
    """Everything VibeML predicts about one job on one (cloud, GPU, count, market) choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    method: Method
    loss: LossImpl
    gpu: str
    gpu_count: int
    cloud: str | None
    region: str | None
    spot: bool
    shape: TrainingShape
    memory: MemoryEstimate
    throughput: ThroughputEstimate
    time: TimeEstimate
    cost: CostEstimate
    quote: PriceQuote | None
    disk_gb: float
    assumptions: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return bool(self.memory.fits)


def method_for_workflow(workflow: str) -> Method:
    """The memory model's method for a workflow name ('trl-lora' → lora, 'qlora' → qlora, 'full')."""
    name = workflow.lower()
    if "qlora" in name:
        return "qlora"
    if "full" in name:
        return "full"
    return "lora"


def shape_from_request(
    request: TrainingRequest,
    *,
    method: Method | None = None,
    loss: LossImpl = "fused",
    gpu_count: int | None = None,
) -> TrainingShape:
    """The per-device step shape a :class:`~vibeml.models.TrainingRequest` trains with on a GPU."""
    hp = request.hyperparameters
    targets = None if hp.lora_target_modules == "all-linear" else tuple(hp.lora_target_modules)
    return TrainingShape(
        method=method or method_for_workflow(request.workflow),
        batch_size=hp.batch_size,
        seq_len=hp.max_seq_length,
        gradient_checkpointing=True if hp.gradient_checkpointing is None else hp.gradient_checkpointing,
        lora_r=hp.lora_r,
        lora_targets=targets,
        lora_dropout=hp.lora_dropout,
        loss=loss,
        gpu_count=gpu_count or request.gpu_count,
    )


def workload_from_request(request: TrainingRequest, dataset: DatasetStats | None = None) -> Workload:
    """Steps or dataset × epochs from a request (and what is known about its dataset).

    Raises:
        ConfigurationError: neither ``max_steps`` nor dataset statistics are available.
    """
    hp = request.hyperparameters
    ds = dataset or DatasetStats()
    if hp.max_steps is None and ds.rows is None and ds.total_tokens is None:
        raise ConfigurationError(
            "cannot estimate the training time: no max_steps and nothing known about the dataset size",
            {"model": request.model, "dataset": request.dataset},
            "Set max_steps, or let VibeML inspect the dataset (rows and token counts) first.",
        )
    mean = ds.mean_tokens_per_row
    if mean is None and ds.total_tokens and ds.rows:
        mean = ds.total_tokens / ds.rows
    return Workload(
        max_steps=hp.max_steps,
        num_epochs=None if hp.max_steps is not None else (hp.num_epochs or 1.0),
        dataset_rows=ds.rows,
        mean_tokens_per_row=mean,
        dataset_tokens=ds.total_tokens,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        packing=hp.packing,
    )


def setup_profile_for(cloud: str | None) -> SetupProfile:
    """Setup assumptions for a cloud (provisioning time from the catalogue; none when local)."""
    if cloud == "local":
        return SetupProfile(provisioning_s=0.0, install_s=0.0, save_s=5.0)
    info = CLOUDS.get(cloud or "")
    return SetupProfile(provisioning_s=info.provisioning_minutes * 60) if info else SetupProfile()


def job_disk_gb(arch: ModelArchitecture, shape: TrainingShape, save_total_limit: int = 2) -> float:
    """Disk a job needs: image + downloaded weights + checkpoints (full fine-tunes keep optimizer state)."""
    weights_gb = arch.weight_bytes_bf16 / 1e9
    if shape.method == "full":
        ckpt = weights_gb * 3.0  # weights + two Adam states in bf16
    else:
        ckpt = arch.lora_params(shape.lora_r, shape.lora_targets) * 12 / 1e9
    return BASE_DISK_GB + weights_gb + save_total_limit * ckpt + (weights_gb if shape.method == "full" else 0.0)


def _cost(
    gpu: str,
    gpu_count: int,
    spot: bool,
    cloud: str | None,
    price_per_gpu_hour: float,
    time: TimeEstimate,
    disk_gb: float,
    notes: list[str],
) -> CostEstimate:
    rate = price_per_gpu_hour * gpu_count
    info = CLOUDS.get(cloud or "")
    storage_rate = (info.storage_usd_per_gb_month if info else 0.0) * disk_gb / 720.0  # $/h
    hours, lo_h, hi_h = time.hours, time.min_hours, time.max_hours
    if spot and info is not None and info.spot_interruptions_per_hour > 0:
        restart_h = (time.setup.total_s - time.setup.save_s) / 3600 + 0.25
        expected_extra = info.spot_interruptions_per_hour * hours * restart_h
        hours += expected_extra
        hi_h += SPOT_MAX_FACTOR * expected_extra * (time.max_hours / time.hours)
        notes.append(f"spot: {info.spot_interruptions_per_hour:.2f} interruptions/h expected, each costs a restart")
    expected = hours * (rate + storage_rate)
    lo = lo_h * (rate + storage_rate)
    hi = hi_h * (rate + storage_rate) * (1.0 + (0.0 if spot else ON_DEMAND_MAX_EXTRA))
    return CostEstimate(
        gpu_type=gpu,
        gpu_count=gpu_count,
        use_spot=spot,
        cloud=cloud,
        hourly_rate=round(rate, 4),
        estimated_duration_hours=round(hours, 4),
        min_cost=round(min(lo, expected), 4),
        expected_cost=round(expected, 4),
        max_cost=round(max(hi, expected), 4),
        notes=tuple(notes),
    )


def estimate_job(
    arch: ModelArchitecture,
    shape: TrainingShape,
    gpu: GPUSpec,
    workload: Workload,
    quote: PriceQuote | None,
    *,
    setup: SetupProfile | None = None,
    model_name: str | None = None,
    save_total_limit: int = 2,
) -> JobEstimate:
    """Memory, time and total cost of one job on one choice. Pure.

    Args:
        arch: Model architecture.
        shape: Per-device step shape (its ``gpu_count`` is the number of GPUs).
        gpu: GPU model.
        workload: Steps or dataset × epochs.
        quote: The price to pay per GPU-hour; ``None`` = free (the local machine).
        setup: Setup assumptions; default from the quote's cloud.
        model_name: Shown in the result (default ``arch.name``).
        save_total_limit: Checkpoints kept (disk).
    """
    cloud = quote.cloud if quote else "local"
    setup = setup or setup_profile_for(cloud)
    memory = estimate_memory(arch, shape, gpu)
    time, speed = estimate_training_time(arch, shape, gpu, workload, setup)
    disk = job_disk_gb(arch, shape, save_total_limit)
    notes: list[str] = []
    if quote is None:
        notes.append("no GPU rental: the local machine costs nothing here")
    elif quote.as_of is not None and not quote.live:
        notes.append(f"price from the bundled table ({quote.as_of.isoformat()}): {quote.source}")
    cost = _cost(
        gpu.name,
        shape.gpu_count,
        bool(quote and quote.spot),
        cloud,
        quote.usd_per_gpu_hour if quote else 0.0,
        time,
        disk,
        notes,
    )
    assumptions = [
        f"loss={shape.loss} ({'TRL fused LM head, bf16 autocast' if shape.loss == 'fused' else 'plain loop'})",
        f"effective sequence length {time.effective_seq_len}",
    ]
    if workload.max_steps is None and workload.mean_tokens_per_row is None and workload.dataset_tokens is None:
        assumptions.append("row lengths unknown: every row counted at max_seq_length")
    return JobEstimate(
        model=model_name or arch.name,
        method=shape.method,
        loss=shape.loss,
        gpu=gpu.name,
        gpu_count=shape.gpu_count,
        cloud=cloud,
        region=quote.region if quote else None,
        spot=bool(quote and quote.spot),
        shape=shape,
        memory=memory,
        throughput=speed,
        time=time,
        cost=cost,
        quote=quote,
        disk_gb=round(disk, 1),
        assumptions=tuple(assumptions + list(memory.notes)),
    )


class CostEstimator:
    """Turns hours or a whole request into a :class:`~vibeml.models.CostEstimate`.

    Args:
        prices: The price table to use (default: the bundled table). Pass
            ``load_price_table(live_quotes)`` to let live prices win.
    """

    def __init__(self, prices: PriceTable | None = None) -> None:
        self.prices = prices or load_price_table()

    def best_quote(
        self, gpu_type: str, gpu_count: int = 1, use_spot: bool = False, cloud: str | None = None
    ) -> PriceQuote:
        """The cheapest quote for a GPU (rentable at ``gpu_count`` when possible).

        Raises:
            ConfigurationError: unknown GPU.
            ResourceError: no price for that GPU on that cloud / market.
        """
        gpu = resolve_gpu(gpu_type)
        quote = self.prices.cheapest(gpu.name, cloud=cloud, spot=use_spot, gpu_count=gpu_count)
        if quote is None:
            quote = self.prices.cheapest(gpu.name, cloud=cloud, spot=use_spot)
        if quote is None:
            where = f" on {cloud}" if cloud else ""
            market = "spot" if use_spot else "on-demand"
            raise ResourceError(
                f"no {market} price for {gpu.name}{where}",
                {
                    "gpu": gpu.name,
                    "cloud": cloud,
                    "spot": use_spot,
                    "clouds_with_gpu": sorted({q.cloud for q in self.prices.filter(gpu=gpu.name)}),
                },
                "Pick another cloud or GPU (see `vibeml gpus`), or allow on-demand capacity.",
            )
        return quote

    def estimate_cost(
        self,
        gpu_type: str,
        estimated_hours: float,
        gpu_count: int = 1,
        use_spot: bool = False,
        cloud: str | None = None,
    ) -> CostEstimate:
        """Cost of renting ``gpu_count`` × ``gpu_type`` for ``estimated_hours`` at the cheapest price.

        ``expected_cost`` = hours × rate; on spot, expected interruptions add time. ``min_cost`` assumes
        the run finishes 25 % early, ``max_cost`` 35 % late (the time model's spread).

        Raises:
            ConfigurationError: unknown GPU or a negative/non-finite number of hours.
            ResourceError: no price for that GPU (on that cloud / market).
        """
        if not math.isfinite(estimated_hours) or estimated_hours < 0:
            raise ConfigurationError(
                "estimated_hours must be a finite, non-negative number", {"estimated_hours": estimated_hours}
            )
        if gpu_count < 1:
            raise ConfigurationError("gpu_count must be at least 1", {"gpu_count": gpu_count})
        quote = self.best_quote(gpu_type, gpu_count, use_spot, cloud)
        rate = quote.usd_per_gpu_hour * gpu_count
        hours = estimated_hours
        notes = [f"{quote.cloud}/{quote.region} at ${quote.usd_per_gpu_hour:.2f}/GPU-h ({quote.source})"]
        hi_hours = hours * 1.35
        info = CLOUDS.get(quote.cloud)
        if use_spot and info is not None:
            extra = info.spot_interruptions_per_hour * hours * 0.25
            hours += extra
            hi_hours += SPOT_MAX_FACTOR * extra
            notes.append("spot: interruptions add restarts")
        return CostEstimate(
            gpu_type=quote.gpu,
            gpu_count=gpu_count,
            use_spot=use_spot,
            cloud=quote.cloud,
            hourly_rate=round(rate, 4),
            estimated_duration_hours=round(hours, 4),
            min_cost=round(estimated_hours * 0.75 * rate, 4),
            expected_cost=round(hours * rate, 4),
            max_cost=round(hi_hours * rate, 4),
            notes=tuple(notes),
        )

    def estimate_request(
        self,
        request: TrainingRequest,
        arch: ModelArchitecture,
        *,
        dataset: DatasetStats | None = None,
        loss: LossImpl = "fused",
        gpu_type: str | None = None,
        cloud: str | None = None,
        setup: SetupProfile | None = None,
    ) -> JobEstimate:
        """Memory, time and total cost of a request on its GPU, cloud and market.

        The GPU is ``gpu_type`` or ``request.gpu_type``; the cloud is ``cloud``, ``request.cloud`` or the
        request's backend (``vast`` bills on Vast, ``local`` is free); with no cloud named, the cheapest
        quote for that GPU on any cloud is used. Use :func:`vibeml.estimate.plan_request` to *choose*.

        Raises:
            ConfigurationError: no GPU named, unknown GPU, or no way to size the workload.
            ResourceError: no price for that GPU where asked.
        """
        name = gpu_type or request.gpu_type
        if not name:
            raise ConfigurationError(
                "no GPU type to estimate for",
                {"model": request.model, "backend": request.backend},
                "Name a GPU (--gpu) or run `vibeml plan` to pick the cheapest one that fits.",
            )
        gpu = resolve_gpu(name)
        shape = shape_from_request(request, loss=loss)
        workload = workload_from_request(request, dataset)
        backend_cloud = BACKEND_CLOUDS.get(request.backend)
        where = cloud or request.cloud or backend_cloud
        quote = None if where == "local" else self.best_quote(gpu.name, shape.gpu_count, request.use_spot, where)
        return estimate_job(
            arch,
            shape,
            gpu,
            workload,
            quote,
            setup=setup,
            model_name=request.model,
            save_total_limit=request.hyperparameters.save_total_limit,
        )


def summarize(job: JobEstimate) -> dict[str, Any]:
    """A flat, JSON-ready summary of a :class:`JobEstimate` (money rounded to 4 decimals)."""
    return {
        "model": job.model,
        "gpu": job.gpu,
        "gpu_count": job.gpu_count,
        "cloud": job.cloud,
        "region": job.region,
        "spot": job.spot,
        "total_gib": round(job.memory.total_gib, 2),
        "fits": job.memory.fits,
        "tokens_per_s": round(job.throughput.tokens_per_s, 1),
        "hours": round(job.time.hours, 4),
        "expected_cost": job.cost.expected_cost,
    }
