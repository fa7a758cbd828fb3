"""The seed's ModelValidator methods, backed by the catalogue and the memory model."""

from __future__ import annotations

import pytest

from vibeml.catalog import GPUS
from vibeml.exceptions import ModelNotFoundError, ResourceError
from vibeml.validation import ModelValidator


@pytest.fixture
def validator() -> ModelValidator:
    return ModelValidator(use_hub=False)


def test_memory_required(validator: ModelValidator) -> None:
    lora = validator.calculate_gpu_memory_required("meta-llama/Llama-3.1-8B", 4)
    qlora = validator.calculate_gpu_memory_required("meta-llama/Llama-3.1-8B", 4, use_quantization=True)
    assert isinstance(lora, float) and 15 < lora < 30
    assert qlora < lora
    assert validator.calculate_gpu_memory_required("meta-llama/Llama-3.1-8B", 8) > lora
    assert validator.calculate_gpu_memory_required("meta-llama/Llama-3.1-8B", 0) > 0  # clamped to 1


def test_recommendation_fits_and_is_cheapest(validator: ModelValidator) -> None:
    small = validator.recommend_gpu_type("Qwen/Qwen2.5-0.5B")
    assert small in GPUS
    need = validator.calculate_gpu_memory_required("Qwen/Qwen2.5-7B", 4)
    gpu = validator.recommend_gpu_type("Qwen/Qwen2.5-7B", 4)
    assert GPUS[gpu].memory_gib * 0.9 >= need
    big = validator.recommend_gpu_type("meta-llama/Llama-3.1-70B", 1, use_quantization=True)
    assert GPUS[big].memory_gib >= 40


def test_nothing_fits(validator: ModelValidator) -> None:
    with pytest.raises(ResourceError) as err:
        validator.recommend_gpu_type("Qwen/Qwen2.5-72B", 4)
    assert err.value.context["required_gib"] > 140


def test_size_in_the_name_is_a_last_resort(validator: ModelValidator) -> None:
    arch = validator.architecture("openai/gpt-oss-20b")
    assert arch.source == "approximate" and 18e9 < arch.param_count < 22e9
    assert validator.calculate_gpu_memory_required("20b", 1) > 35
    with pytest.raises(ModelNotFoundError):
        validator.calculate_gpu_memory_required("acme/mystery-model")
