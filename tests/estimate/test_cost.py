"""The seed's CostEstimator and the request-level estimate."""

from __future__ import annotations

import pytest

from vibeml.catalog import PriceQuote, builtin_architecture, load_price_table
from vibeml.estimate.cost import (
    CostEstimator,
    DatasetStats,
    estimate_job,
    method_for_workflow,
    shape_from_request,
    workload_from_request,
)
from vibeml.exceptions import ConfigurationError, ResourceError
from vibeml.models import CostEstimate, TrainingRequest


def test_estimate_cost_seed_api() -> None:
    est = CostEstimator().estimate_cost("H100", 2.0)
    assert isinstance(est, CostEstimate)
    cheapest = load_price_table().cheapest("H100")
    assert est.hourly_rate == pytest.approx(cheapest.usd_per_gpu_hour)
    assert est.expected_cost == pytest.approx(2.0 * cheapest.usd_per_gpu_hour)
    assert est.min_cost <= est.expected_cost <= est.max_cost
    assert est.cloud == cheapest.cloud and est.gpu_type == "H100" and not est.use_spot


def test_estimate_cost_count_cloud_spot() -> None:
    ce = CostEstimator()
    aws = ce.estimate_cost("h100-sxm", 1.0, gpu_count=8, cloud="aws")
    assert aws.hourly_rate == pytest.approx(8 * 6.88) and aws.cloud == "aws"
    spot = ce.estimate_cost("RTX4090", 3.0, use_spot=True)
    on_demand = ce.estimate_cost("RTX4090", 3.0)
    assert spot.expected_cost < on_demand.expected_cost and spot.use_spot
    assert spot.estimated_duration_hours > 3.0  # expected interruptions add time


def test_estimate_cost_errors() -> None:
    ce = CostEstimator()
    with pytest.raises(ConfigurationError):
        ce.estimate_cost("TPU", 1.0)
    with pytest.raises(ConfigurationError):
        ce.estimate_cost("H100", -1.0)
    with pytest.raises(ResourceError) as err:
        ce.estimate_cost("H100", 1.0, use_spot=True, cloud="lambda")
    assert "lambda" in err.value.context["clouds_with_gpu"]


def test_live_prices_win() -> None:
    live = PriceQuote(cloud="vast", region="global", gpu="H100", usd_per_gpu_hour=1.23)
    est = CostEstimator(load_price_table([live])).estimate_cost("H100", 1.0)
    assert est.hourly_rate == pytest.approx(1.23)


def request(**kw: object) -> TrainingRequest:
    base: dict[str, object] = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "dataset": "data.jsonl",
        "max_steps": 500,
        "batch_size": 8,
        "max_seq_length": 2048,
        "gpu_type": "H100",
        "backend": "vast",
    }
    base.update(kw)
    return TrainingRequest(**base)


def test_request_level_estimate_total_cost() -> None:
    arch = builtin_architecture("Qwen/Qwen2.5-7B")
    job = CostEstimator().estimate_request(request(), arch)
    assert job.cloud == "vast" and job.gpu == "H100" and job.memory.fits
    t = job.time
    rate = job.cost.hourly_rate
    assert job.cost.expected_cost >= (t.train_s + t.setup.total_s) / 3600 * rate  # + storage
    assert job.cost.expected_cost == pytest.approx((t.train_s + t.setup.total_s) / 3600 * rate, rel=0.05)
    assert job.cost.min_cost < job.cost.expected_cost < job.cost.max_cost
    assert t.steps == 500 and t.tokens == 500 * 8 * 2048


def test_request_local_backend_is_free_and_needs_a_gpu() -> None:
    arch = builtin_architecture("Qwen/Qwen2.5-7B")
    job = CostEstimator().estimate_request(request(backend="local"), arch)
    assert job.cost.expected_cost == 0 and job.cloud == "local" and job.time.setup.provisioning_s == 0
    with pytest.raises(ConfigurationError):
        CostEstimator().estimate_request(request(gpu_type=None), arch)
    with pytest.raises(ConfigurationError):
        CostEstimator().estimate_request(request(max_steps=None), arch)


def test_request_with_dataset_statistics() -> None:
    arch = builtin_architecture("Qwen/Qwen2.5-7B")
    req = request(max_steps=None, num_epochs=2, backend="skypilot", cloud="runpod")
    job = CostEstimator().estimate_request(req, arch, dataset=DatasetStats(rows=8000, total_tokens=8000 * 400))
    assert job.cloud == "runpod"
    assert job.time.steps == 2000 and job.time.effective_seq_len == 500


def test_shape_and_workload_mapping() -> None:
    assert method_for_workflow("trl-lora") == "lora"
    assert method_for_workflow("qlora") == "qlora"
    assert method_for_workflow("full") == "full"
    req = request(
        lora_target_modules=["q_proj", "v_proj"],
        gradient_checkpointing=False,
        lora_r=64,
        gradient_accumulation_steps=4,
        packing=True,
    )
    shape = shape_from_request(req, loss="standard")
    assert shape.lora_targets == ("q_proj", "v_proj") and not shape.gradient_checkpointing
    assert shape.lora_r == 64 and shape.loss == "standard" and shape.lora_dropout == 0.05
    wl = workload_from_request(req)
    assert wl.gradient_accumulation_steps == 4 and wl.packing and wl.max_steps == 500


def test_estimate_job_is_pure_and_spot_adds_risk() -> None:
    arch = builtin_architecture("meta-llama/Llama-3.2-1B")
    from vibeml.catalog import resolve_gpu
    from vibeml.estimate import TrainingShape, Workload

    table = load_price_table()
    od = table.cheapest("RTX 4090", cloud="vast")
    sp = table.cheapest("RTX 4090", cloud="vast", spot=True)
    shape, wl, gpu = TrainingShape(), Workload(max_steps=3000), resolve_gpu("RTX 4090")
    a = estimate_job(arch, shape, gpu, wl, od)
    b = estimate_job(arch, shape, gpu, wl, sp)
    assert a == estimate_job(arch, shape, gpu, wl, od)
    assert b.cost.expected_cost < a.cost.expected_cost
    assert b.cost.estimated_duration_hours > a.cost.estimated_duration_hours
