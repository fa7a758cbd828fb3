"""Out-of-memory recovery: the ladder of safer configurations, and what a failed attempt teaches the estimator.

When training runs out of memory in its first steps (:data:`RETRY_WINDOW_STEPS` optimizer steps of an
attempt, before it saved a checkpoint), :func:`vibeml.trainer.run.train` frees the model and tries the
next configuration of the ladder in the same process, on the same machine, before it gives up. The
ladder is the config's ``oom_fallbacks`` (the planner may write one) or, when that is None,
:func:`default_fallbacks`: the micro-batch halved (to a divisor of the effective batch) down to 1 with
proportionally more gradient accumulation, then gradient checkpointing on every layer (unless the config
turned it off explicitly). Every rung keeps ``batch_size × gradient_accumulation_steps``, so the
optimizer sees the same effective batch and the run's result does not depend on the retry.

Each retry is an ``oom_retry`` event (:class:`~vibeml.trainer.events.OomRetryEvent`) carrying the
memory estimate for the configuration that failed and the device's capacity: the estimate error the
memory model is recalibrated from. It is folded into the job's progress (``JobProgress.oom_retries``).

Fault injection (tests only): :data:`FAULT_ENV` makes the trainer raise a synthetic out-of-memory at
an attempt's first step when its micro-batch is above the given number. It is never set by VibeML, the
job environments VibeML writes do not pass it, and the trainer prints a warning when it is active.

Runs under torch (imported lazily) but imports nothing heavy at module level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vibeml.trainer.config import OomFallback, TrainerConfig

__all__ = [
    "FAULT_ENV",
    "RETRY_WINDOW_STEPS",
    "Attempt",
    "InjectedOutOfMemoryError",
    "default_fallbacks",
    "describe",
    "estimate_failed_gib",
    "fallbacks",
    "fault_callback",
    "injected_oom_above",
    "retry_config",
    "rung_text",
]

#: Fault-injection hook for tests: "N" → a synthetic out-of-memory at the first step of any attempt whose
#: micro-batch is above N. Only the tests' trainer environment sets it.
FAULT_ENV = "VIBEML_TEST_FAULT_OOM_ABOVE_BATCH"
#: An out-of-memory within this many optimizer steps of an attempt's start is retried ("first steps").
RETRY_WINDOW_STEPS = 10


class InjectedOutOfMemoryError(RuntimeError):
    """The synthetic out-of-memory of :data:`FAULT_ENV` (its text reads as torch's, so it takes the same path)."""


def injected_oom_above() -> int | None:
    """The fault-injection threshold, or None when the hook is off (unset or not a number)."""
    raw = os.environ.get(FAULT_ENV, "").strip()
    return int(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class Attempt:
    """The configuration one attempt ran: micro-batch, accumulation and resolved checkpointing."""

    batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    every_n_layers: int = 1

    @property
    def text(self) -> str:
        return describe(
            self.batch_size, self.gradient_accumulation_steps, self.gradient_checkpointing, self.every_n_layers
        )


def rung_text(rung: OomFallback) -> str:
    return describe(rung.batch_size, rung.gradient_accumulation_steps, rung.gradient_checkpointing)


def describe(batch_size: int, accumulation: int, checkpointing: bool | None, every_n_layers: int = 1) -> str:
    """``micro-batch 4 x 2, checkpointing on`` (None: as before)."""
    if checkpointing is None:
        ckpt = "checkpointing as before"
    elif not checkpointing:
        ckpt = "checkpointing off"
    else:
        ckpt = "checkpointing on" + (f" (1 layer in {every_n_layers})" if every_n_layers > 1 else "")
    return f"micro-batch {batch_size} x {accumulation}, {ckpt}"


def default_fallbacks(batch_size: int, accumulation: int, checkpointing: bool | None) -> list[OomFallback]:
    """The ladder derived from the hyperparameters (see the module docstring).

    ``checkpointing`` is the config's value: None (automatic) and True end the ladder with checkpointing
    on; an explicit False is kept (no checkpointing rung).
    """
    effective = batch_size * accumulation
    ladder: list[OomFallback] = []
    b = batch_size
    while b > 1:
        b = max(d for d in range(1, b // 2 + 1) if effective % d == 0)
        ladder.append(OomFallback(batch_size=b, gradient_accumulation_steps=effective // b))
    if checkpointing is not False:
        ladder.append(
            OomFallback(batch_size=b, gradient_accumulation_steps=effective // b, gradient_checkpointing=True)
        )
    return ladder


def fallbacks(config: TrainerConfig) -> list[OomFallback]:
    """The config's ladder, or the derived one when it gives none."""
    if config.oom_fallbacks is not None:
        return list(config.oom_fallbacks)
    hp = config.hyperparameters
    return default_fallbacks(hp.batch_size, hp.gradient_accumulation_steps, hp.gradient_checkpointing)


def _same(rung: OomFallback, tried: Attempt) -> bool:
    """Whether ``rung`` would run exactly what ``tried`` ran (a rung that cannot help)."""
    if (rung.batch_size, rung.gradient_accumulation_steps) != (tried.batch_size, tried.gradient_accumulation_steps):
        return False
    if rung.gradient_checkpointing is None:
        return True
    if rung.gradient_checkpointing:
        return tried.gradient_checkpointing and tried.every_n_layers == 1
    return not tried.gradient_checkpointing


def retry_config(
    config: TrainerConfig, ladder: list[OomFallback], tried: Attempt
) -> tuple[TrainerConfig, OomFallback, list[OomFallback]] | None:
    """The next config to try after ``tried`` ran out of memory, its rung and the rest of the ladder;
    None when the ladder is spent. Rungs that would repeat ``tried``, or ask for a bigger micro-batch, are
    skipped."""
    rest = list(ladder)
    while rest:
        rung = rest.pop(0)
        if rung.batch_size > tried.batch_size or _same(rung, tried):
            continue
        update: dict[str, Any] = {
            "batch_size": rung.batch_size,
            "gradient_accumulation_steps": rung.gradient_accumulation_steps,
        }
        if rung.gradient_checkpointing is not None:
            update["gradient_checkpointing"] = rung.gradient_checkpointing
        hp = config.hyperparameters.model_copy(update=update)
        return config.model_copy(update={"hyperparameters": hp}), rung, rest
    return None


def estimate_failed_gib(config: TrainerConfig, model_config: dict[str, Any] | None, tried: Attempt) -> float | None:
    """What the memory model predicts for the configuration that failed (None when it cannot say)."""
    if not model_config:
        return None
    try:
        from vibeml.catalog.architectures import architecture_from_config
        from vibeml.estimate.memory import TrainingShape, estimate_memory

        hp = config.hyperparameters
        arch = architecture_from_config(model_config, name=config.model, source="config")
        targets = hp.lora_target_modules
        shape = TrainingShape(
            method=config.method,
            batch_size=tried.batch_size,
            seq_len=hp.max_seq_length,
            lora_r=hp.lora_r,
            lora_targets=None if targets == "all-linear" else tuple(targets),
            lora_dropout=hp.lora_dropout,
        )
        off = estimate_memory(arch, shape.model_copy(update={"gradient_checkpointing": False})).total_gib
        if not tried.gradient_checkpointing:
            return round(off, 3)
        full = estimate_memory(arch, shape.model_copy(update={"gradient_checkpointing": True})).total_gib
        n = max(1, tried.every_n_layers)  # the same interpolation the checkpointing choice uses
        return round(full + (off - full) * (1.0 - 1.0 / n), 3)
    except Exception:  # an architecture the estimator does not know: no estimate to compare
        return None


def fault_callback(threshold: int, batch_size: int) -> Any:
    """A TrainerCallback raising the synthetic out-of-memory at the first step (micro-batch > threshold)."""
    from transformers import TrainerCallback

    class InjectOutOfMemory(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if batch_size > threshold:
                raise InjectedOutOfMemoryError(
                    f"CUDA out of memory (injected by {FAULT_ENV}={threshold} at micro-batch {batch_size})"
                )

    return InjectOutOfMemory()
