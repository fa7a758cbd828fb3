"""Speed settings the trainer chooses for the device it finds: pure functions, testable on a CPU.

- **Gradient checkpointing** costs ~25–35 % of throughput. When the config leaves it unset, the memory
  model (:mod:`vibeml.estimate.memory`) decides on a GPU: off when the step fits with headroom, on
  only every n-th layer when that fits (transformers' ``every_n_layers``), on for every layer otherwise.
  On a CPU it stays off (host memory is rarely the limit there, and speed is).
- **Attention**: FlashAttention 2 when ``flash-attn`` is installed on CUDA, else PyTorch SDPA.
- **Optimizer**: fused AdamW (``adamw_torch_fused``) on CUDA.
- **Liger kernels** (RMSNorm, SwiGLU, RoPE) when ``liger-kernel`` is installed on CUDA; TRL keeps its
  own fused LM head + loss, which never materialises the full logits.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from vibeml.catalog.architectures import ModelArchitecture
    from vibeml.estimate.memory import TrainingShape

__all__ = [
    "CheckpointingChoice",
    "SpeedSettings",
    "choose_gradient_checkpointing",
    "installed",
    "resolve_speed_settings",
]

#: Partial checkpointing steps tried, fastest first (checkpoint every 4th, 3rd, 2nd layer).
PARTIAL_EVERY_N = (4, 3, 2)


@dataclass(frozen=True)
class CheckpointingChoice:
    """Whether to checkpoint activations, on which layers, and why."""

    enabled: bool
    every_n_layers: int = 1
    reason: str = ""
    estimated_gib: float | None = None
    budget_gib: float | None = None

    def kwargs(self) -> dict[str, object]:
        """``activation_checkpointing_kwargs`` for transformers' ``TrainingArguments``."""
        out: dict[str, object] = {"use_reentrant": False}
        if self.every_n_layers > 1:
            out["every_n_layers"] = self.every_n_layers
        return out


def choose_gradient_checkpointing(
    arch: ModelArchitecture,
    shape: TrainingShape,
    capacity_gib: float,
    *,
    headroom: float = 0.15,
    partial: Sequence[int] = PARTIAL_EVERY_N,
) -> CheckpointingChoice:
    """Pick the fastest checkpointing that fits ``capacity_gib`` with ``headroom`` to spare.

    Memory with checkpointing on every n-th layer is interpolated between the model's "off" and "all
    layers" estimates: the (1 − 1/n) layers that are not checkpointed keep all their activations.

    Args:
        arch: The model's architecture.
        shape: The per-device step (its ``gradient_checkpointing`` value is ignored).
        capacity_gib: Memory of the GPU.
        headroom: Share of ``capacity_gib`` to keep free (longer samples, fragmentation).
        partial: ``every_n_layers`` values to try between "off" and "all", fastest first.
    """
    from vibeml.estimate.memory import estimate_memory

    budget = capacity_gib * (1.0 - headroom)
    off = estimate_memory(arch, shape.model_copy(update={"gradient_checkpointing": False})).total_gib
    if off <= budget:
        return CheckpointingChoice(
            False, 1, f"fits without checkpointing ({off:.1f} of {budget:.1f} GiB)", round(off, 2), round(budget, 2)
        )
    full = estimate_memory(arch, shape.model_copy(update={"gradient_checkpointing": True})).total_gib
    for n in sorted({int(x) for x in partial if int(x) > 1}, reverse=True):
        mem = full + (off - full) * (1.0 - 1.0 / n)
        if mem <= budget:
            return CheckpointingChoice(
                True,
                n,
                f"checkpointing 1 layer in {n} fits ({mem:.1f} of "
                f"{budget:.1f} GiB; all layers {full:.1f}, none {off:.1f})",
                round(mem, 2),
                round(budget, 2),
            )
    why = "fits" if full <= budget else "is still over budget, the closest fit"
    return CheckpointingChoice(
        True, 1, f"checkpointing every layer {why} ({full:.1f} of {budget:.1f} GiB)", round(full, 2), round(budget, 2)
    )


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class SpeedSettings:
    """What the trainer passes to transformers/TRL for speed."""

    attn_implementation: str
    optim: str | None
    use_liger_kernel: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def resolve_speed_settings(
    device: Literal["cpu", "cuda"] | str,
    *,
    attn_implementation: str = "auto",
    optim: str | None = None,
    use_liger_kernel: bool | None = None,
    has_flash_attn: bool = False,
    has_liger: bool = False,
) -> SpeedSettings:
    """Turn the config's "auto" choices into concrete settings for ``device`` (pure: pass what is installed).

    Explicit choices are kept; an explicit Liger request without the package installed is dropped with a
    note (the run still works, only slower).
    """
    notes: list[str] = []
    cuda = device == "cuda"
    attn = attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if cuda and has_flash_attn else "sdpa"
    elif attn.startswith("flash_attention") and not (cuda and has_flash_attn):
        notes.append(f"{attn} needs flash-attn on CUDA: using sdpa")
        attn = "sdpa"
    chosen_optim = optim if optim is not None else ("adamw_torch_fused" if cuda else None)
    liger = (cuda and has_liger) if use_liger_kernel is None else bool(use_liger_kernel)
    if liger and not has_liger:
        notes.append("use_liger_kernel asked for, but liger-kernel is not installed: running without it")
        liger = False
    if liger and not cuda:
        notes.append("Liger kernels need CUDA (Triton): running without them")
        liger = False
    return SpeedSettings(attn, chosen_optim, liger, tuple(notes))
