"""Model architectures: exact parameter counts, the built-in table and local configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vibeml.catalog.architectures import (
    BUILTIN_CONFIGS,
    architecture_from_config,
    builtin_architecture,
    resolve_architecture,
)
from vibeml.exceptions import ConfigurationError, ModelNotFoundError

# n_params and n_trainable (LoRA r=16 on all 7 projections) measured in ../shared/calibration.
CALIBRATED = {
    "HuggingFaceTB/SmolLM2-135M": (134_515_008, 4_884_480),
    "Qwen/Qwen2.5-0.5B": (494_032_768, 8_798_208),
    "meta-llama/Llama-3.2-1B": (1_235_814_400, 11_272_192),
    "mistralai/Mistral-7B-v0.1": (7_241_732_096, 41_943_040),
}
# Public totals (transformers' own count of the released configs).
PUBLIC = {
    "Qwen/Qwen2.5-7B": 7_615_616_512,
    "Qwen/Qwen2.5-32B": 32_763_876_352,
    "Qwen/Qwen2.5-72B": 72_706_203_648,
    "meta-llama/Llama-3.1-8B": 8_030_261_248,
    "meta-llama/Llama-3.1-70B": 70_553_706_496,
    "google/gemma-2-2b": 2_614_341_888,
    "google/gemma-2-9b": 9_241_705_984,
    "microsoft/Phi-3-mini-4k-instruct": 3_821_079_552,
}
FAMILIES = [
    "Qwen2.5-0.5B",
    "Qwen2.5-1.5B",
    "Qwen2.5-3B",
    "Qwen2.5-7B",
    "Qwen2.5-14B",
    "Qwen2.5-32B",
    "Qwen2.5-72B",
    "Llama-3.2-1B",
    "Llama-3.2-3B",
    "Llama-3.1-8B",
    "Llama-3.1-70B",
    "Mistral-7B-v0.1",
    "SmolLM2-135M",
    "SmolLM2-360M",
    "SmolLM2-1.7B",
    "gemma-2-2b",
    "gemma-2-9b",
    "Phi-3-mini-4k-instruct",
]


@pytest.mark.parametrize(("model", "counts"), CALIBRATED.items())
def test_param_and_lora_counts_match_measurements(model: str, counts: tuple[int, int]) -> None:
    arch = builtin_architecture(model)
    assert arch is not None
    assert arch.param_count == counts[0]
    assert arch.lora_params(16) == counts[1]
    assert arch.lora_params(16, ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")) == counts[1]


@pytest.mark.parametrize(("model", "total"), PUBLIC.items())
def test_param_counts_match_public_totals(model: str, total: int) -> None:
    arch = builtin_architecture(model)
    assert arch is not None and arch.param_count == total


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_resolves_offline(name: str) -> None:
    arch = resolve_architecture(name, use_hub=False)
    assert arch.source == "builtin" and arch.param_count > 1e8


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"),
        ("unsloth/Qwen2.5-7B-Instruct-bnb-4bit", "Qwen/Qwen2.5-7B"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"),
        ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M"),
        ("google/gemma-2-2b-it", "google/gemma-2-2b"),
        ("microsoft/Phi-3-mini-128k-instruct", "microsoft/Phi-3-mini-4k-instruct"),
    ],
)
def test_variants_resolve_to_their_family(model: str, expected: str) -> None:
    assert resolve_architecture(model, use_hub=False).name == expected


def test_unknown_model_offline_is_model_not_found() -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_architecture("someone/unheard-of-model")  # HF_HUB_OFFLINE=1 from conftest
    assert "builtin" in err.value.context


def test_local_directory_and_file(tmp_path: Path) -> None:
    cfg = dict(BUILTIN_CONFIGS["Qwen/Qwen2.5-0.5B"], vocab_size=1000)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for target in (tmp_path, tmp_path / "config.json"):
        arch = resolve_architecture(str(target))
        assert arch.source == "local" and arch.vocab_size == 1000 and arch.qkv_bias


def test_nested_text_config_and_missing_fields() -> None:
    inner = BUILTIN_CONFIGS["meta-llama/Llama-3.2-1B"]
    arch = architecture_from_config({"model_type": "llava", "text_config": inner})
    assert arch.param_count == CALIBRATED["meta-llama/Llama-3.2-1B"][0]
    with pytest.raises(ConfigurationError):
        architecture_from_config({"model_type": "llama", "hidden_size": 64})


def test_broken_local_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigurationError):
        resolve_architecture(str(tmp_path))


def test_moe_active_params_below_total() -> None:
    arch = architecture_from_config(
        {
            "model_type": "mixtral",
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 32000,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
        }
    )
    assert arch.is_moe
    assert 46e9 < arch.param_count < 47.5e9  # Mixtral-8x7B: 46.7B
    assert 12.5e9 < arch.active_param_count < 13.5e9  # ~12.9B active


@pytest.mark.slow
def test_counts_match_transformers_on_meta_device() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    extra = {
        "mixtral": {
            "model_type": "mixtral",
            "hidden_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "intermediate_size": 512,
            "vocab_size": 1000,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
        },
        "qwen3": {
            "model_type": "qwen3",
            "hidden_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "intermediate_size": 512,
            "vocab_size": 1000,
        },
        "llama-bias": {
            "model_type": "llama",
            "hidden_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 512,
            "vocab_size": 1000,
            "attention_bias": True,
            "mlp_bias": True,
        },
    }
    for name, cfg in [*BUILTIN_CONFIGS.items(), *extra.items()]:
        fields = dict(cfg)
        model_type = fields.pop("model_type")
        conf = transformers.AutoConfig.for_model(model_type, **fields)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(conf)
        expected = sum(p.numel() for p in model.parameters())
        assert architecture_from_config(conf.to_dict(), name).param_count == expected, name
