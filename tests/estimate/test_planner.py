"""The planner ranks by total job cost, drops what does not fit, and respects constraints."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibeml.catalog import PriceQuote, builtin_architecture, load_price_table
from vibeml.estimate import PlanConstraints, TrainingShape, Workload, plan_request, plan_training
from vibeml.exceptions import BudgetExceededError, ConfigurationError, ResourceError
from vibeml.models import TrainingRequest

PRICES = load_price_table()
QWEN7 = builtin_architecture("Qwen/Qwen2.5-7B")


def plan(**kw: object):
    shape = TrainingShape(batch_size=8, seq_len=2048)
    return plan_training(QWEN7, shape, Workload(max_steps=2000), PRICES, PlanConstraints(**kw))


def test_sorted_by_total_cost_and_all_fit() -> None:
    p = plan()
    costs = [o.expected_cost for o in p.options]
    assert costs == sorted(costs)
    assert [o.rank for o in p.options] == list(range(1, len(p.options) + 1))
    assert all(o.estimate.memory.fits and o.memory_gib <= o.capacity_gib * 0.85 for o in p.options)
    # a 24 GB card fits with micro-batch 2 and accumulation; a T4 does not, whatever the split
    assert {r.gpu for r in p.rejected if r.reason == "does_not_fit" and r.gpu_count == 1} >= {"T4"}
    assert any(o.gpu == "RTX 4090" and o.micro_batch * o.grad_accum == 8 for o in p.options)
    assert all("GiB" in r.detail for r in p.rejected)


def test_a_faster_gpu_can_be_cheaper_overall() -> None:
    p = plan(spot=False)
    best = p.cheapest
    assert best is not None
    cheaper_per_hour = [o for o in p.options if o.usd_per_gpu_hour < best.usd_per_gpu_hour]
    assert cheaper_per_hour, "the winner should not simply be the cheapest per hour"
    assert all(o.expected_cost >= best.expected_cost for o in cheaper_per_hour)


def test_one_entry_per_cloud_gpu_count_market() -> None:
    keys = [(o.cloud, o.gpu, o.gpu_count, o.spot) for o in plan().options]
    assert len(keys) == len(set(keys))
    aws = [o for o in plan(clouds=("aws",)).options if o.gpu == "H100"]
    assert aws and all(o.gpu_count == 8 and o.region == "us-east-1" for o in aws if not o.spot)


def test_constraints_respected() -> None:
    p = plan(clouds=("runpod", "vast"), spot=True, max_hours=3.0, gpu_types=("H100", "A100-80GB", "4090"))
    assert p.options
    for o in p.options:
        assert o.cloud in ("runpod", "vast") and o.spot and o.hours <= 3.0
        assert o.gpu in ("H100", "A100-80GB", "RTX 4090")
    assert any(r.reason == "too_slow" for r in p.rejected) or all(o.hours <= 3 for o in p.options)
    with pytest.raises(ConfigurationError):
        plan(clouds=("lambda",), spot=True)


def test_budget_exceeded_names_the_cheapest_fitting_option() -> None:
    cheapest = plan().cheapest
    assert cheapest is not None
    with pytest.raises(BudgetExceededError) as err:
        plan(max_cost=cheapest.expected_cost / 2)
    ctx = err.value.context["cheapest_option"]
    assert ctx["gpu"] == cheapest.gpu and ctx["expected_cost"] == cheapest.expected_cost
    assert err.value.estimated_cost == cheapest.expected_cost
    within = plan(max_cost=cheapest.expected_cost * 1.2)
    assert within.options and all(o.expected_cost <= cheapest.expected_cost * 1.2 for o in within.options)
    assert any(r.reason == "over_budget" for r in within.rejected)


def test_nothing_fits_is_a_resource_error() -> None:
    arch = builtin_architecture("meta-llama/Llama-3.1-70B")
    with pytest.raises(ResourceError):
        plan_training(
            arch, TrainingShape(method="full"), Workload(max_steps=10), PRICES, PlanConstraints(gpu_counts=(1,))
        )
    with pytest.raises(ResourceError):
        plan(max_hours=0.01)


def test_fsdp_when_a_replica_does_not_fit() -> None:
    arch = builtin_architecture("meta-llama/Llama-3.1-8B")
    p = plan_training(
        arch,
        TrainingShape(method="full", batch_size=2),
        Workload(max_steps=100, gradient_accumulation_steps=4),
        PRICES,
        PlanConstraints(gpu_types=("A100-40GB",)),
    )
    assert p.options and all(o.parallelism == "fsdp" and o.gpu_count >= 2 for o in p.options)


def test_live_quote_takes_part() -> None:
    live = PriceQuote(cloud="vast", region="Texas, US", gpu="H100", usd_per_gpu_hour=0.40, offer_id="42")
    p = plan_training(
        QWEN7, TrainingShape(batch_size=8, seq_len=2048), Workload(max_steps=2000), PRICES.with_live([live])
    )
    assert p.cheapest is not None and p.cheapest.live_price and p.cheapest.offer_id == "42"


def test_plan_request_takes_constraints_from_the_request() -> None:
    req = TrainingRequest(
        model="Qwen/Qwen2.5-7B",
        dataset="d.jsonl",
        max_steps=500,
        batch_size=4,
        cloud="runpod",
        use_spot=False,
        backend="skypilot",
    )
    p = plan_request(req, QWEN7, PRICES)
    assert p.options and all(o.cloud == "runpod" and not o.spot for o in p.options)
    both = plan_request(req.model_copy(update={"use_spot": True, "cloud": None}), QWEN7, PRICES)
    assert {o.spot for o in both.options} == {True, False}
    with pytest.raises(BudgetExceededError):
        plan_request(req.model_copy(update={"max_cost": 0.01}), QWEN7, PRICES)


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(
        ["HuggingFaceTB/SmolLM2-360M", "Qwen/Qwen2.5-1.5B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-14B"]
    ),
    method=st.sampled_from(["lora", "qlora", "full"]),
    batch=st.integers(1, 16),
    seq=st.sampled_from([256, 1024, 4096]),
    steps=st.integers(10, 5000),
    budget=st.one_of(st.none(), st.floats(0.5, 500)),
    spot=st.sampled_from([None, True, False]),
)
def test_plan_properties(
    model: str, method: str, batch: int, seq: int, steps: int, budget: float | None, spot: bool | None
) -> None:
    arch = builtin_architecture(model)
    shape = TrainingShape(method=method, batch_size=batch, seq_len=seq)
    try:
        p = plan_training(arch, shape, Workload(max_steps=steps), PRICES, PlanConstraints(max_cost=budget, spot=spot))
    except BudgetExceededError as exc:
        assert budget is not None and exc.context["cheapest_option"]["expected_cost"] > budget
        return
    except ResourceError:
        return
    costs = [o.expected_cost for o in p.options]
    assert costs == sorted(costs)
    for o in p.options:
        assert o.estimate.memory.fits and o.estimate.memory.required_gib <= o.capacity_gib
        assert budget is None or o.expected_cost <= budget
        assert spot is None or o.spot == spot
