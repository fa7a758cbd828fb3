"""Parallel strategies in the trainer: one process (``single``), data parallel (``ddp``), fully sharded (``fsdp``).

The trainer is started once per process by torchrun (see :mod:`vibeml.launch`), which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``; accelerate (through the Trainer) then joins the process group: NCCL on GPUs,
gloo on CPUs. This module turns ``TrainerConfig.strategy`` into the Trainer's arguments:

- ``ddp``: the whole model on every process, gradients all-reduced (``DistributedDataParallel``).
- ``fsdp``: FSDP2 (``fully_shard``) per decoder layer: parameters, gradients and optimizer states are
  sharded across processes; activation checkpointing is FSDP's own (``fsdp_config['activation_checkpointing']``),
  not the Trainer's (which would all-gather twice). Checkpoints are sharded (``SHARDED_STATE_DICT``: each
  process writes its shard, and resumes from it); the final adapter/model is gathered and written once,
  unsharded, by rank 0 (:func:`final_state_dict_full`).

Mixed precision follows the device (bf16 where the GPU supports it, fp16 AMP otherwise, fp32 on CPU), as in
one process. QLoRA with FSDP is refused (:func:`check_strategy`): FSDP2 cannot shard bitsandbytes' packed
4-bit weights in the versions VibeML installs. Stop requests (a signal to one process, the runtime budget)
are agreed across processes every step (:func:`any_rank`), so every process stops, and saves, at the same step.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from vibeml.exceptions import ConfigurationError
from vibeml.trainer.config import TrainerConfig

__all__ = [
    "agree_stop",
    "barrier",
    "check_strategy",
    "die_with_parent",
    "final_state_dict_full",
    "is_main_process",
    "node_count",
    "strategy_sft_kwargs",
    "world_size",
]


def world_size() -> int:
    """Processes in this run (torchrun's ``WORLD_SIZE``; 1 without torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE") or "1"))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Global rank 0 (or no torchrun): the one process that writes events, logs and the final result."""
    return os.environ.get("RANK", "0") in ("", "0")


def node_count() -> int:
    """Nodes in this run: ``WORLD_SIZE / LOCAL_WORLD_SIZE`` under torchrun, else 1."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or "1"))
    except ValueError:
        return 1
    return max(1, world_size() // local)


def die_with_parent() -> None:
    """Under torchrun: end this process when torchrun dies (Linux ``PR_SET_PDEATHSIG``).

    torchrun starts its workers in sessions of their own, so a SIGKILL to torchrun's process group (the
    local backend's last resort after the grace period, the Vast runner's budget kill) would leave them
    running, and billing, without it.
    """
    if world_size() < 2 or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc-like: the shutdown path of torchrun still applies
        return
    if os.getppid() == 1:  # torchrun died before the call
        os._exit(1)


def check_strategy(config: TrainerConfig) -> None:
    """Refuse a strategy this method/engine cannot run, and a strategy that disagrees with the process count.

    Raises:
        ConfigurationError: QLoRA with FSDP, Unsloth with several processes, ``single`` under torchrun
            with several processes.
    """
    n = world_size()
    ctx = {"strategy": config.strategy, "method": config.method, "engine": config.engine, "world_size": n}
    if config.strategy == "fsdp" and config.method == "qlora":
        raise ConfigurationError(
            "QLoRA cannot be trained with FSDP here: FSDP2 shards parameters as DTensors and cannot shard "
            "bitsandbytes' packed 4-bit weights",
            ctx,
            "Use strategy 'ddp' for QLoRA (each GPU holds the 4-bit base), or LoRA ('trl-lora') with FSDP.",
        )
    if config.engine == "unsloth" and (config.strategy != "single" or n > 1):
        raise ConfigurationError(
            "the Unsloth engine trains on one GPU only",
            ctx,
            "Use the trl-lora workflow for several GPUs (strategy ddp or fsdp).",
        )
    if config.strategy == "single" and n > 1:
        raise ConfigurationError(
            f"strategy 'single' was started as {n} processes",
            ctx,
            "Set strategy to 'ddp' or 'fsdp', or start the trainer as one process.",
        )


def _layer_classes(model: Any) -> list[str]:
    """The decoder layer class names FSDP wraps one by one (transformers' ``_no_split_modules``)."""
    base = model
    for attr in ("get_base_model",):  # a PeftModel
        if hasattr(base, attr):
            base = getattr(base, attr)()
    names = list(getattr(base, "_no_split_modules", None) or [])
    if names:
        return [str(n) for n in names]
    raise ConfigurationError(
        f"FSDP does not know how to shard {type(base).__name__}: it names no decoder layer class",
        {"model_class": type(base).__name__},
        "Use strategy 'ddp', or a model whose transformers class lists _no_split_modules.",
    )


def strategy_sft_kwargs(config: TrainerConfig, device: str, model: Any, checkpointing: bool) -> dict[str, Any]:
    """The SFTConfig fields for ``config.strategy`` (empty for ``single``).

    ``checkpointing`` is whether activation checkpointing is wanted; under FSDP the caller must then turn the
    Trainer's own checkpointing off (the returned ``activation_checkpointing``/``gradient_checkpointing``
    keys say so).
    """
    if config.strategy == "single":
        return {}
    out: dict[str, Any] = {
        "ddp_backend": "nccl" if device == "cuda" else "gloo",
        # Each process's mean loss weighs its share of the tokens: the same gradient as one process.
        "average_tokens_across_devices": True,
        # A multi-node job without a shared disk: every node keeps the checkpoints it resumes from.
        "save_on_each_node": node_count() > 1,
    }
    if config.strategy == "ddp":
        # LoRA freezes the base: no unused-parameter search (each step would pay a graph walk for it).
        out["ddp_find_unused_parameters"] = False
        return out
    out["fsdp"] = True
    out["fsdp_config"] = {
        "version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_layer_cls_to_wrap": _layer_classes(model),
        "reshard_after_forward": True,
        "state_dict_type": "SHARDED_STATE_DICT",
        "activation_checkpointing": bool(checkpointing),
        "cpu_ram_efficient_loading": False,
    }
    # FSDP's own activation checkpointing replaces the Trainer's (one all-gather per layer, not two)
    out["activation_checkpointing"] = False
    out["gradient_checkpointing"] = False
    return out


#: Stop reasons as the numbers processes agree on (the highest wins), and back.
_REASONS = ("", "max_runtime", "stop", "sigint", "sigterm")


def agree_stop(reason: str | None, device: str) -> str | None:
    """The stop reason of any process (an all-reduce each step), so that all stop, and save, at the same step.

    Without a process group (one process) ``reason`` is returned as is.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return reason
    code = 0 if reason is None else _REASONS.index(reason) if reason in _REASONS else _REASONS.index("stop")
    on = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
    t = torch.tensor([code], dtype=torch.int32, device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    agreed = int(t.item())
    if agreed == 0:
        return None
    return reason if reason is not None and code == agreed else _REASONS[agreed]


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def final_state_dict_full(trainer: Any) -> None:
    """Make the next ``save_model`` gather the whole (unsharded) state dict; rank 0 writes it."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is not None:
        plugin.set_state_dict_type("FULL_STATE_DICT")


def allow_cpu_fsdp() -> None:
    """Let accelerate run FSDP2 on CPU processes (gloo), as it does on GPUs.

    accelerate turns an FSDP plugin on only for accelerator devices; on CPU it silently falls back to
    data parallelism (``MULTI_CPU``). FSDP2 itself (``fully_shard`` over a CPU device mesh, gloo collectives)
    works on CPU, so VibeML promotes ``MULTI_CPU`` to ``FSDP`` when a plugin was given: the same sharded code
    path as on GPUs, which is what the CPU tests exercise. Idempotent; a no-op when accelerate changes shape.
    """
    from accelerate import state as acc_state

    cls = acc_state.AcceleratorState
    if getattr(cls.__init__, "_vibeml_cpu_fsdp", False):
        return
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        kind = acc_state.DistributedType
        if plugin is not None and self.distributed_type == kind.MULTI_CPU:
            if self._mixed_precision != "no":
                plugin.set_mixed_precision(self._mixed_precision)
            self.distributed_type = kind.FSDP
            self.fsdp_plugin = plugin
            acc_state.PartialState._shared_state["distributed_type"] = kind.FSDP

    __init__._vibeml_cpu_fsdp = True  # type: ignore[attr-defined]
    cls.__init__ = __init__
