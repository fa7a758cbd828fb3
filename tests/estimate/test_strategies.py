"""Parallel strategies in the planner (issue 14 items 3–4): each option names a strategy its workflow and
backend run; FSDP's memory model shards what FSDP shards; communication over the catalogue's link."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from vibeml.backends.local import LocalBackend
from vibeml.backends.skypilot.backend import SkyPilotBackend
from vibeml.backends.vast.backend import VastBackend
from vibeml.catalog import builtin_architecture, load_price_table, resolve_gpu
from vibeml.catalog.gpus import gpu_link
from vibeml.estimate import PlanConstraints, TrainingShape, Workload, estimate_memory, plan_training
from vibeml.estimate.autoconfig import PLANNER_HEADROOM, BatchPolicy
from vibeml.estimate.planner import unsupported_strategies
from vibeml.estimate.throughput import estimate_throughput
from vibeml.exceptions import ResourceError
from vibeml.models import TrainingRequest
from vibeml.workflows.registry import get_workflow

PRICES = load_price_table()


@settings(max_examples=20, deadline=None)
@given(
    workflow=st.sampled_from(["trl-lora", "qlora", "full", "unsloth"]),
    backend=st.sampled_from([LocalBackend, VastBackend, SkyPilotBackend]),
    model=st.sampled_from(["Qwen/Qwen2.5-1.5B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-14B"]),
)
def test_every_option_is_runnable_by_its_workflow_and_backend(workflow: str, backend: type, model: str) -> None:
    req = TrainingRequest(model=model, dataset="d.jsonl", workflow=workflow, backend="skypilot", max_steps=20)
    unsupported = unsupported_strategies(req, backend)
    wf = get_workflow(workflow)
    method = "qlora" if workflow == "qlora" else ("full" if workflow == "full" else "lora")
    try:
        p = plan_training(
            builtin_architecture(model),
            TrainingShape(method=method, seq_len=1024),
            Workload(max_steps=20),
            PRICES,
            PlanConstraints(unsupported_strategies=unsupported),
            policy=BatchPolicy(effective_batch=16),
        )
    except ResourceError:
        return
    for o in p.options:
        assert o.strategy in wf.strategies
        assert o.strategy == "single" or backend.capabilities.multi_gpu.supported
        assert (o.strategy == "single") == (o.gpu_count == 1)
    for r in p.rejected:
        if r.reason == "unsupported_strategy":
            assert "does not run" in r.detail or "runs one GPU" in r.detail


def test_a_strategy_the_workflow_lacks_is_dropped_with_the_reason() -> None:
    req = TrainingRequest(model="m", dataset="d.jsonl", workflow="qlora", backend="skypilot", max_steps=20)
    p = plan_training(
        builtin_architecture("meta-llama/Llama-3.1-8B"),
        TrainingShape(method="qlora", seq_len=1024),
        Workload(max_steps=20),
        PRICES,
        PlanConstraints(parallelism="fsdp", unsupported_strategies=unsupported_strategies(req, SkyPilotBackend)),
        policy=BatchPolicy(effective_batch=8),
    )
    assert all(o.gpu_count == 1 for o in p.options)
    assert any(
        r.reason == "unsupported_strategy" and "qlora workflow does not run fsdp" in r.detail for r in p.rejected
    )


@settings(max_examples=25, deadline=None)
@given(
    model=st.sampled_from(["Qwen/Qwen2.5-1.5B", "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B"]),
    method=st.sampled_from(["lora", "qlora", "full"]),
    batch=st.integers(1, 4),
    gc=st.booleans(),
)
def test_per_gpu_fsdp_memory_decreases_with_the_gpu_count(model: str, method: str, batch: int, gc: bool) -> None:
    arch = builtin_architecture(model)
    mem = [
        estimate_memory(
            arch,
            TrainingShape(
                method=method,
                batch_size=batch,
                seq_len=1024,
                gradient_checkpointing=gc,
                gpu_count=n,
                parallelism="fsdp",
            ),
        ).allocated_gib
        for n in (2, 4, 8, 16)
    ]
    assert all(a > b for a, b in itertools.pairwise(mem)), mem


def test_70b_top_option_fits_with_the_required_headroom() -> None:
    p = plan_training(
        builtin_architecture("meta-llama/Llama-3.1-70B"),
        TrainingShape(seq_len=2048),
        Workload(max_steps=200),
        PRICES,
        policy=BatchPolicy(effective_batch=16),
    )
    top = p.options[0]
    assert top.gpu_count > 1 and top.strategy == "fsdp"
    assert top.memory_gib <= top.capacity_gib * (1 - PLANNER_HEADROOM)
    assert top.estimate.memory.required_gib <= top.capacity_gib * (1 - PLANNER_HEADROOM)


def test_several_gpus_are_not_n_times_faster_and_cost_covers_the_same_tokens() -> None:
    arch = builtin_architecture("meta-llama/Llama-3.1-8B")
    for gpu, n in (("A100-80GB", 2), ("RTX 4090", 2), ("H100", 8), ("H100", 16)):
        spec = resolve_gpu(gpu)
        one = estimate_throughput(arch, TrainingShape(batch_size=2, seq_len=2048), spec)
        for strategy in ("ddp", "fsdp"):
            s = TrainingShape(batch_size=2, seq_len=2048, gpu_count=n, parallelism=strategy)
            many = estimate_throughput(arch, s, spec)
            assert many.comm_time_s > 0 and many.tokens_per_s < n * one.tokens_per_s
    # the network between nodes is slower than NVLink inside one
    lora16 = TrainingShape(batch_size=2, seq_len=2048, gpu_count=16, parallelism="fsdp")
    assert (
        estimate_throughput(arch, lora16, resolve_gpu("H100")).comm_time_s
        > estimate_throughput(arch, lora16.model_copy(update={"gpu_count": 8}), resolve_gpu("H100")).comm_time_s
    )
    assert gpu_link(resolve_gpu("H100"), 8).kind == "nvlink"
    assert gpu_link(resolve_gpu("RTX 4090"), 2).kind == "pcie"
    assert gpu_link(resolve_gpu("H100"), 16).kind == "network"
    p = plan_training(
        builtin_architecture("Qwen/Qwen2.5-7B"),
        TrainingShape(seq_len=2048),
        Workload(max_steps=100),
        PRICES,
        PlanConstraints(gpu_types=("H100",)),
        policy=BatchPolicy(effective_batch=16),
    )
    assert len({o.gpu_count for o in p.options}) > 1
    assert len({o.estimate.time.tokens for o in p.options}) == 1
