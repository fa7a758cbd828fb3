"""Joint auto-configuration: per GPU choice, the micro-batch × accumulation × checkpointing × strategy that
trains the same effective batch in the least time, with the planner's memory headroom to spare.

The user fixes what matters for the result — the effective batch (sequences per optimizer step over all
GPUs), sequence length, method, LoRA rank, steps or epochs — and may fix any of micro-batch, accumulation,
checkpointing and strategy explicitly; those are kept. Everything left open is searched:

* micro-batch: every divisor ``m`` of ``effective_batch / gpu_count`` (accumulation ``a`` follows:
  ``m × a × gpu_count = effective_batch``);
* gradient checkpointing: off or on every layer. The trainer's partial checkpointing (``every_n_layers``)
  is chosen only by its own automatic mode, which a launch cannot pin, so the planner never picks it;
* strategy: ``single`` on one GPU; ``ddp`` or ``fsdp`` on several (those the workflow and backend run).

A candidate fits when the nvidia-smi figure of the memory model stays within ``(1 − headroom)`` of the GPU's
memory — the same rule and default share (15 %) the trainer applies when it chooses checkpointing itself.
Among those that fit, the one with the shortest training time wins. On a given GPU count and price quote
the expected cost is increasing in the time (hourly rate × hours, spot interruptions proportional to
hours, setup and disk identical for every candidate), so the fastest is also the cheapest; the winner does
not depend on the quote and is computed once per (GPU, count).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import GPUSpec
from vibeml.estimate.memory import MemoryEstimate, TrainingShape, estimate_memory
from vibeml.estimate.throughput import SetupProfile, Workload, estimate_training_time

__all__ = [
    "PLANNER_HEADROOM",
    "STRATEGIES",
    "AutoConfig",
    "BatchPolicy",
    "ConfigTrial",
    "NoConfig",
    "Strategy",
    "batch_splits",
    "choose_config",
]

Strategy = Literal["single", "ddp", "fsdp"]
STRATEGIES: tuple[Strategy, ...] = ("single", "ddp", "fsdp")
#: Share of a GPU's memory the planner keeps free (longer samples, fragmentation); the trainer's default
#: ``memory_headroom`` is the same.
PLANNER_HEADROOM = 0.15


class BatchPolicy(BaseModel):
    """What the user fixed about the batch; ``None`` = the planner chooses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effective_batch: int = Field(ge=1, le=1_048_576, description="Sequences per optimizer step, all GPUs.")
    micro_batch: int | None = Field(None, ge=1, le=65536)
    grad_accum: int | None = Field(None, ge=1, le=65536)
    gradient_checkpointing: bool | None = None
    strategy: Strategy | None = None

    @classmethod
    def fixed(cls, shape: TrainingShape, grad_accum: int = 1) -> BatchPolicy:
        """Everything fixed to ``shape`` on one GPU (the user's own configuration)."""
        return cls(
            effective_batch=shape.batch_size * grad_accum,
            micro_batch=shape.batch_size,
            grad_accum=grad_accum,
            gradient_checkpointing=shape.gradient_checkpointing,
        )


class ConfigTrial(BaseModel):
    """One configuration the search looked at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    strategy: Strategy
    memory_gib: float = Field(description="nvidia-smi figure per GPU.")
    budget_gib: float = Field(description="What the headroom leaves of the GPU's memory.")
    fits: bool
    train_hours: float | None = Field(None, description="Training time (fitting candidates only).")
    tokens_per_s: float | None = None
    chosen: bool = False


class AutoConfig(BaseModel):
    """The winner for one (GPU, count), with what was tried."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    strategy: Strategy
    gpu_count: int
    effective_batch: int
    shape: TrainingShape
    workload: Workload
    memory: MemoryEstimate
    reason: str
    trials: tuple[ConfigTrial, ...]


class NoConfig(BaseModel):
    """Why no configuration was possible on one (GPU, count)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Literal["does_not_fit", "batch_split", "unsupported_strategy"]
    detail: str
    required_gib: float | None = Field(None, description="The leanest candidate's nvidia-smi figure.")
    trials: tuple[ConfigTrial, ...] = ()


def batch_splits(policy: BatchPolicy, count: int) -> list[tuple[int, int]]:
    """(micro-batch, accumulation) pairs with micro × accumulation × count = effective batch."""
    if policy.effective_batch % count:
        return []
    per_gpu = policy.effective_batch // count
    micros = (
        [policy.micro_batch]
        if policy.micro_batch is not None
        else [d for d in range(1, per_gpu + 1) if per_gpu % d == 0]
    )
    out = []
    for m in micros:
        if per_gpu % m:
            continue
        a = per_gpu // m
        if policy.grad_accum is not None and a != policy.grad_accum:
            continue
        out.append((m, a))
    return out


def choose_config(
    arch: ModelArchitecture,
    shape: TrainingShape,
    workload: Workload,
    gpu: GPUSpec,
    count: int,
    policy: BatchPolicy,
    *,
    strategies: tuple[Strategy, ...] = STRATEGIES,
    unsupported: dict[str, str] | None = None,
    headroom: float = PLANNER_HEADROOM,
    setup: SetupProfile | None = None,
) -> AutoConfig | NoConfig:
    """The fastest configuration of ``shape`` on ``count`` × ``gpu`` that keeps ``policy``'s effective batch
    and fits with ``headroom``; or why there is none.

    Args:
        arch: Model architecture.
        shape: Method, sequence length, LoRA, precision, optimizer, loss (batch, checkpointing, count and
            parallelism are replaced per candidate).
        workload: Steps or dataset × epochs (its accumulation is replaced per candidate).
        gpu: The GPU model.
        count: GPUs.
        policy: The effective batch and what the user fixed.
        strategies: Strategies allowed (``single`` is the only one on one GPU).
        unsupported: Strategy → why the workflow or backend cannot run it (those are not tried).
        headroom: Share of the GPU's memory to keep free.
        setup: Setup assumptions (the same for every candidate; only shown in the times).
    """
    unsupported = unsupported or {}
    if count == 1:  # a strategy names how several GPUs share the work: one GPU is always "single"
        wanted: list[Strategy] = ["single"]
    else:
        wanted = [s for s in ("ddp", "fsdp") if s in strategies and (policy.strategy in (None, s))]
    runnable: list[Strategy] = [s for s in wanted if s not in unsupported]
    if not runnable:
        why = "; ".join(f"{s}: {unsupported[s]}" for s in wanted if s in unsupported)
        if not why:
            why = f"strategy {policy.strategy} cannot run on {count} GPU{'s' if count > 1 else ''}"
        return NoConfig(reason="unsupported_strategy", detail=why)
    splits = batch_splits(policy, count)
    if not splits:
        fixed = ", ".join(
            f"{k} {v}"
            for k, v in (("micro-batch", policy.micro_batch), ("accumulation", policy.grad_accum))
            if v is not None
        )
        return NoConfig(
            reason="batch_split",
            detail=f"effective batch {policy.effective_batch} does not split over {count} GPUs"
            + (f" with {fixed}" if fixed else ""),
        )
    checkpointing = [False, True] if policy.gradient_checkpointing is None else [policy.gradient_checkpointing]
    budget = gpu.memory_gib * (1.0 - headroom)
    trials: list[ConfigTrial] = []
    fitting: list[tuple[tuple[float, bool, int, int], int, TrainingShape, Workload, MemoryEstimate]] = []
    for strategy in runnable:
        for m, a in splits:
            for gc in checkpointing:
                s = shape.model_copy(
                    update={
                        "batch_size": m,
                        "gradient_checkpointing": gc,
                        "gpu_count": count,
                        "parallelism": "fsdp" if strategy == "fsdp" else "ddp",
                    }
                )
                mem = estimate_memory(arch, s, gpu)
                fits = bool(mem.fits) and mem.total_gib <= budget
                hours = tps = None
                wl = workload.model_copy(update={"gradient_accumulation_steps": a})
                if fits:
                    time, speed = estimate_training_time(arch, s, gpu, wl, setup)
                    hours, tps = time.train_s / 3600, speed.tokens_per_s
                    # fastest; then checkpointing off, a bigger micro-batch, DDP before FSDP
                    key = (time.train_s, gc, -m, STRATEGIES.index(strategy))
                    fitting.append((key, len(trials), s, wl, mem))
                trials.append(
                    ConfigTrial(
                        micro_batch=m,
                        grad_accum=a,
                        gradient_checkpointing=gc,
                        strategy=strategy,
                        memory_gib=round(mem.total_gib, 2),
                        budget_gib=round(budget, 2),
                        fits=fits,
                        train_hours=None if hours is None else round(hours, 4),
                        tokens_per_s=None if tps is None else round(tps, 1),
                    )
                )
    if not fitting:
        leanest = min(trials, key=lambda t: t.memory_gib)
        return NoConfig(
            reason="does_not_fit",
            detail=f"needs {leanest.memory_gib:.1f} GiB per GPU at the leanest (micro-batch "
            f"{leanest.micro_batch}, checkpointing {'on' if leanest.gradient_checkpointing else 'off'}), "
            f"{gpu.name} allows {budget:.1f} of {gpu.memory_gib:.1f} GiB ({headroom:.0%} headroom)",
            required_gib=leanest.memory_gib,
            trials=tuple(trials),
        )
    key, index, s, wl, mem = min(fitting, key=lambda f: f[0])
    win = trials[index]
    trials[index] = win.model_copy(update={"chosen": True})
    n_fit = len(fitting)
    reason = (
        f"micro-batch {win.micro_batch} × accumulation {win.grad_accum}"
        + (f" × {count} GPUs ({win.strategy})" if count > 1 else "")
        + f", checkpointing {'on' if win.gradient_checkpointing else 'off'}: the fastest of {n_fit} that fit"
        f" ({len(trials)} tried) — {win.memory_gib:.1f} of {budget:.1f} GiB"
    )
    if win.gradient_checkpointing and policy.gradient_checkpointing is None:
        off = [t for t in trials if not t.gradient_checkpointing and t.strategy == win.strategy]
        if off and not any(t.fits for t in off):
            reason += f"; without checkpointing the leanest needs {min(t.memory_gib for t in off):.1f} GiB"
    return AutoConfig(
        micro_batch=win.micro_batch,
        grad_accum=win.grad_accum,
        gradient_checkpointing=win.gradient_checkpointing,
        strategy=win.strategy,
        gpu_count=count,
        effective_batch=policy.effective_batch,
        shape=s,
        workload=wl,
        memory=mem,
        reason=reason,
        trials=tuple(trials),
    )
