"""Load the model and tokenizer the way the config asks: transformers (LoRA, QLoRA, full) or Unsloth.

Chooses the speed settings (:mod:`vibeml.trainer.speed`) for the device it finds, and gradient
checkpointing from the memory model when the config leaves it unset. Runs after torch is imported and
before TRL is (Unsloth must patch transformers/TRL first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vibeml.trainer.config import TrainerConfig
from vibeml.trainer.modeling import (
    DeviceSettings,
    check_bitsandbytes,
    load_model,
    load_tokenizer,
    load_unsloth,
)
from vibeml.trainer.speed import (
    CheckpointingChoice,
    SpeedSettings,
    choose_gradient_checkpointing,
    installed,
    resolve_speed_settings,
)

__all__ = ["Loaded", "auto_checkpointing", "load_for_training"]


@dataclass
class Loaded:
    """A model ready for ``SFTTrainer`` and the choices made on the way."""

    model: Any
    tokenizer: Any
    checkpointing: CheckpointingChoice
    speed: SpeedSettings
    peft_applied: bool  # Unsloth adds its adapters itself; TRL adds them otherwise


def _cuda_capacity_gib() -> float | None:
    import torch

    try:
        return float(torch.cuda.get_device_properties(0).total_memory) / 2**30
    except Exception:  # no CUDA, or the query failed: let the caller choose the safe default
        return None


def auto_checkpointing(
    config: TrainerConfig, dev: DeviceSettings, model_config: dict[str, Any] | None, capacity_gib: float | None
) -> CheckpointingChoice:
    """The config's choice, or the memory model's when it is unset (off on CPUs)."""
    hp = config.hyperparameters
    if hp.gradient_checkpointing is not None:
        return CheckpointingChoice(hp.gradient_checkpointing, 1, "set in the config")
    if dev.device != "cuda":
        return CheckpointingChoice(False, 1, "off on CPU")
    if capacity_gib is None or not model_config:
        return CheckpointingChoice(True, 1, "on: GPU memory or model shape unknown")
    from vibeml.catalog.architectures import architecture_from_config
    from vibeml.estimate.memory import TrainingShape

    try:
        arch = architecture_from_config(model_config, name=config.model, source="config")
        targets = hp.lora_target_modules
        shape = TrainingShape(
            method=config.method,
            batch_size=hp.batch_size,
            seq_len=hp.max_seq_length,
            lora_r=hp.lora_r,
            lora_targets=None if targets == "all-linear" else tuple(targets),
            lora_dropout=hp.lora_dropout,
        )
        return choose_gradient_checkpointing(arch, shape, capacity_gib, headroom=config.memory_headroom)
    except Exception as exc:  # an architecture the estimator does not know: the safe choice
        return CheckpointingChoice(True, 1, f"on: no memory estimate ({type(exc).__name__})")


def load_for_training(config: TrainerConfig, dev: DeviceSettings, source: str) -> Loaded:
    """Tokenizer + model for ``config`` on ``dev`` (QLoRA: 4-bit base prepared for k-bit training).

    Raises:
        ResourceError: QLoRA without a working bitsandbytes, Unsloth without CUDA or the package.
        ModelNotFoundError: The model cannot be loaded.
    """
    hp = config.hyperparameters
    speed = resolve_speed_settings(
        dev.device,
        attn_implementation=config.attn_implementation,
        optim=config.optim,
        use_liger_kernel=config.use_liger_kernel,
        has_flash_attn=installed("flash_attn"),
        has_liger=installed("liger_kernel"),
    )
    capacity = _cuda_capacity_gib() if dev.device == "cuda" else None
    if config.engine == "unsloth":
        choice = auto_checkpointing(config, dev, None, None)
        if hp.gradient_checkpointing is None:  # Unsloth's offloaded checkpointing costs little
            choice = CheckpointingChoice(True, 1, "on: Unsloth's offloaded checkpointing")
        model, tokenizer = load_unsloth(
            source,
            device=dev.device,
            method=config.method,
            max_seq_length=hp.max_seq_length,
            lora_r=hp.lora_r,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=hp.lora_target_modules,
            gradient_checkpointing=choice.enabled,
            seed=hp.seed,
        )
        # Unsloth wires checkpointing into the model itself; the Trainer must not add its own on top.
        return Loaded(model, tokenizer, choice, speed, peft_applied=config.method != "full")

    quantize = config.method == "qlora"
    if quantize:
        check_bitsandbytes(dev.device)
    tokenizer = load_tokenizer(source)
    model = load_model(source, dev.dtype_name, attn_implementation=speed.attn_implementation, quantize_4bit=quantize)
    try:
        model_config = model.config.to_dict()
    except Exception:  # pragma: no cover - every PretrainedConfig has to_dict
        model_config = None
    choice = auto_checkpointing(config, dev, model_config, capacity)
    if quantize:
        from peft import prepare_model_for_kbit_training

        # Casts norms/embeddings to fp32 and freezes the base; the Trainer turns checkpointing on (with
        # every_n_layers) and TRL makes the inputs require grads for it.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return Loaded(model, tokenizer, choice, speed, peft_applied=False)
