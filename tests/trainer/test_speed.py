"""The trainer's speed choices: gradient checkpointing from the memory model, attention, optimizer, Liger."""

from __future__ import annotations

import pytest

from vibeml.catalog.architectures import builtin_architecture
from vibeml.estimate.memory import TrainingShape, estimate_memory
from vibeml.models import Hyperparameters
from vibeml.trainer.config import TrainerConfig
from vibeml.trainer.engine import auto_checkpointing
from vibeml.trainer.modeling import DeviceSettings
from vibeml.trainer.speed import CheckpointingChoice, choose_gradient_checkpointing, resolve_speed_settings

LLAMA_8B = builtin_architecture("meta-llama/Llama-3.1-8B", fuzzy=False)
SMOL = builtin_architecture("HuggingFaceTB/SmolLM2-135M", fuzzy=False)
CUDA = DeviceSettings("cuda", "bfloat16", bf16=True, fp16=False)
CPU = DeviceSettings("cpu", "float32", bf16=False, fp16=False)


def shape(**kw: object) -> TrainingShape:
    return TrainingShape.model_validate({"method": "lora", "batch_size": 8, "seq_len": 2048, **kw})


def test_off_when_it_fits_comfortably() -> None:
    assert SMOL is not None
    choice = choose_gradient_checkpointing(SMOL, shape(batch_size=2, seq_len=512), 80.0)
    assert choice.enabled is False and "fits without" in choice.reason
    assert choice.kwargs() == {"use_reentrant": False}


def test_on_every_layer_when_memory_is_tight() -> None:
    assert LLAMA_8B is not None
    choice = choose_gradient_checkpointing(LLAMA_8B, shape(), 24.0)
    assert choice.enabled and choice.every_n_layers == 1 and "over budget" in choice.reason


def test_partial_checkpointing_in_between() -> None:
    assert LLAMA_8B is not None
    off = estimate_memory(LLAMA_8B, shape(gradient_checkpointing=False)).total_gib
    full = estimate_memory(LLAMA_8B, shape(gradient_checkpointing=True)).total_gib
    assert full < off
    # a GPU whose budget sits between "every layer" and "every 2nd layer" picks 1 in 2
    half = full + (off - full) * 0.5
    capacity = (half + 0.5) / 0.85
    choice = choose_gradient_checkpointing(LLAMA_8B, shape(), capacity)
    assert choice.enabled and choice.every_n_layers == 2
    assert choice.kwargs() == {"use_reentrant": False, "every_n_layers": 2}
    assert choice.estimated_gib is not None and choice.estimated_gib <= choice.budget_gib  # type: ignore[operator]
    roomier = choose_gradient_checkpointing(LLAMA_8B, shape(), (full + (off - full) * 0.75 + 0.5) / 0.85)
    assert roomier.every_n_layers == 4
    # the recorded H100 shape (batch 8 x 2048, r=16) does not fit without checkpointing on 80 GB
    h100 = choose_gradient_checkpointing(LLAMA_8B, shape(lora_r=16), 79.2)
    assert h100.enabled


@pytest.mark.parametrize("capacity", [8.0, 16.0, 24.0, 40.0, 48.0, 80.0, 141.0])
def test_the_choice_always_fits_or_is_the_most_frugal(capacity: float) -> None:
    assert LLAMA_8B is not None
    choice = choose_gradient_checkpointing(LLAMA_8B, shape(batch_size=4, seq_len=1024), capacity)
    budget = capacity * 0.85
    if choice.estimated_gib is not None and choice.estimated_gib > budget:
        assert choice.enabled and choice.every_n_layers == 1


def test_auto_checkpointing_policy() -> None:
    cfg = TrainerConfig(model="m", dataset="d", output_dir="o", checkpoint_dir="c", events_path="e")
    llama = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
    }
    assert auto_checkpointing(cfg, CPU, llama, None) == CheckpointingChoice(False, 1, "off on CPU")
    assert auto_checkpointing(cfg, CUDA, None, 80.0).enabled  # unknown shape: the safe choice
    assert auto_checkpointing(cfg, CUDA, {"model_type": "weird"}, 80.0).enabled
    tiny = cfg.model_copy(update={"hyperparameters": Hyperparameters(batch_size=1, max_seq_length=128)})
    assert auto_checkpointing(tiny, CUDA, llama, 80.0).enabled is False
    assert auto_checkpointing(cfg, CUDA, llama, 24.0).enabled
    forced = cfg.model_copy(update={"hyperparameters": Hyperparameters(gradient_checkpointing=False)})
    assert auto_checkpointing(forced, CUDA, llama, 24.0) == CheckpointingChoice(False, 1, "set in the config")


def test_speed_settings() -> None:
    cpu = resolve_speed_settings("cpu", has_flash_attn=True, has_liger=True)
    assert (cpu.attn_implementation, cpu.optim, cpu.use_liger_kernel) == ("sdpa", None, False)
    gpu = resolve_speed_settings("cuda", has_flash_attn=True, has_liger=True)
    assert (gpu.attn_implementation, gpu.optim, gpu.use_liger_kernel) == (
        "flash_attention_2",
        "adamw_torch_fused",
        True,
    )
    plain = resolve_speed_settings("cuda")
    assert (plain.attn_implementation, plain.use_liger_kernel) == ("sdpa", False) and not plain.notes
    asked = resolve_speed_settings("cuda", attn_implementation="flash_attention_2", use_liger_kernel=True)
    assert asked.attn_implementation == "sdpa" and asked.use_liger_kernel is False and len(asked.notes) == 2
    kept = resolve_speed_settings(
        "cuda", attn_implementation="eager", optim="adamw_torch", use_liger_kernel=False, has_liger=True
    )
    assert (kept.attn_implementation, kept.optim, kept.use_liger_kernel) == ("eager", "adamw_torch", False)


def test_config_validates_speed_fields() -> None:
    base = {"model": "m", "dataset": "d", "output_dir": "o", "checkpoint_dir": "c", "events_path": "e"}
    assert TrainerConfig.model_validate({**base, "method": "qlora", "engine": "unsloth"}).method == "qlora"
    for bad in (
        {"attn_implementation": "flash; rm -rf /"},
        {"optim": "Adam W"},
        {"method": "dora"},
        {"engine": "vllm"},
        {"memory_headroom": 1.5},
    ):
        with pytest.raises(ValueError):
            TrainerConfig.model_validate({**base, **bad})
