from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from vibeml.client import build_request
from vibeml.exceptions import ValidationError
from vibeml.models import CostEstimate, Hyperparameters, JobStatus, TrainingRequest


def test_flat_hyperparameters_are_lifted() -> None:
    r = TrainingRequest(model="Qwen/Qwen2.5-0.5B", dataset="./d.jsonl", max_steps=10, learning_rate=1e-3)
    assert r.hyperparameters.max_steps == 10
    assert r.hyperparameters.learning_rate == 1e-3
    nested = TrainingRequest(model="m/x", dataset="d/x", hyperparameters={"batch_size": 2}, lora_r=8)
    assert nested.hyperparameters.batch_size == 2 and nested.hyperparameters.lora_r == 8


def test_defaults_follow_the_seed() -> None:
    r = TrainingRequest(model="m/x", dataset="d/x")
    assert r.workflow == "trl-lora" and r.backend == "local" and r.max_cost is None
    assert r.hyperparameters.lora_target_modules == "all-linear"


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"model": ""}, "model: must not be empty"),
        ({"model": "a\nb"}, "control"),
        ({"model": "m/x\u202e"}, "control or invisible"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 5, "num_epochs": 1}, "not both"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"max_cost": 0}, "max_cost"),
        ({"max_cost": float("inf")}, "max_cost"),
        ({"lora_target_modules": ["q_proj", "x; import os"]}, "not module names"),
        ({"workflow": "Robust LoRA!"}, "workflow"),
        ({"bogus": 1}, "bogus"),
        ({"name": "has space"}, "name"),
    ],
)
def test_bad_fields_give_clear_errors(fields: dict[str, Any], needle: str) -> None:
    base: dict[str, Any] = {"model": "m/x", "dataset": "d/x"}
    base.update(fields)
    with pytest.raises(ValidationError) as info:
        build_request(**base)
    assert needle in info.value.message
    assert info.value.recovery_suggestion


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_keys = st.sampled_from([*TrainingRequest.model_fields, *Hyperparameters.model_fields, "bogus", "max_seq_len"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=8))
def test_any_input_is_a_request_or_a_clear_error(fields: dict[str, Any]) -> None:
    try:
        req = build_request(**fields)
    except ValidationError as exc:
        assert exc.message.startswith("invalid training request: ")
        assert exc.recovery_suggestion
    else:
        assert isinstance(req, TrainingRequest)
        # A valid request survives a JSON round trip unchanged (it is stored as JSON).
        assert TrainingRequest.model_validate_json(req.model_dump_json()) == req


def test_cost_estimate_is_ordered_and_frozen() -> None:
    est = CostEstimate(
        gpu_type="H100",
        hourly_rate=2.0,
        estimated_duration_hours=1.5,
        min_cost=2.5,
        expected_cost=3.0,
        max_cost=4.0,
    )
    with pytest.raises(PydanticValidationError):
        est.expected_cost = 1.0  # type: ignore[misc]
    with pytest.raises(PydanticValidationError, match="min_cost <= expected_cost <= max_cost"):
        CostEstimate(
            gpu_type="H100",
            hourly_rate=2.0,
            estimated_duration_hours=1.5,
            min_cost=3.5,
            expected_cost=3.0,
            max_cost=4.0,
        )


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1e6))
def test_cost_estimate_accepts_exactly_ordered_triples(a: float, b: float, c: float) -> None:
    lo, mid, hi = sorted((a, b, c))
    CostEstimate(gpu_type="T4", hourly_rate=1, estimated_duration_hours=1, min_cost=lo, expected_cost=mid, max_cost=hi)
    if lo < mid:
        with pytest.raises(PydanticValidationError):
            CostEstimate(
                gpu_type="T4", hourly_rate=1, estimated_duration_hours=1, min_cost=mid, expected_cost=lo, max_cost=hi
            )


def test_job_status_terminal_set() -> None:
    assert JobStatus.TERMINAL == {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED}
    assert JobStatus("running") is JobStatus.RUNNING and not JobStatus.RUNNING.is_terminal
    assert str(JobStatus.FAILED) == "failed"
