"""Multi-node plans (issue 14): with ``max_nodes`` > 1 the planner adds jobs of full 8-GPU nodes when one node
of a GPU cannot hold the job, on clouds that join machines; the network between the nodes is the catalogue's
link in the time model; single-machine backends (Vast, local) keep ``max_nodes`` 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibeml.catalog import builtin_architecture, load_price_table, resolve_gpu
from vibeml.catalog.gpus import GPUS_PER_NODE, NETWORK_GBS, gpu_link
from vibeml.catalog.prices import CLOUDS
from vibeml.estimate import PlanConstraints, TrainingShape, Workload, plan_training
from vibeml.estimate.autoconfig import BatchPolicy
from vibeml.estimate.throughput import estimate_throughput
from vibeml.exceptions import ResourceError

PRICES = load_price_table()
LLAMA70 = builtin_architecture("meta-llama/Llama-3.1-70B")
FULL = TrainingShape(method="full", seq_len=1024)


def _plan(max_nodes: int, **kw: object):
    return plan_training(
        LLAMA70,
        FULL,
        Workload(max_steps=50),
        PRICES,
        PlanConstraints(gpu_types=("H100",), max_nodes=max_nodes, **kw),  # type: ignore[arg-type]
        policy=BatchPolicy(effective_batch=16),
    )


def test_a_70b_full_fine_tune_does_not_fit_one_machine() -> None:
    with pytest.raises(ResourceError) as info:
        _plan(1)
    assert "more nodes" in (info.value.recovery_suggestion or "")


def test_a_70b_full_fine_tune_is_planned_on_two_8_gpu_nodes_with_fsdp() -> None:
    p = _plan(4)
    top = p.options[0]
    assert (top.gpu, top.gpu_count, top.num_nodes, top.strategy) == ("H100", GPUS_PER_NODE, 2, "fsdp")
    assert top.micro_batch * top.grad_accum * top.gpu_count * top.num_nodes == top.effective_batch == 16
    assert top.estimate.shape.gpu_count == 16  # memory and time for all 16 GPUs: FSDP shards over them
    assert top.hourly_rate == pytest.approx(top.usd_per_gpu_hour * 16, rel=1e-6)
    assert top.memory_gib <= top.capacity_gib * 0.85
    # one node was tried and does not hold it; 3 nodes (24 GPUs) cannot split a batch of 16
    assert any(r.num_nodes == 1 and r.gpu_count == 8 and r.reason == "does_not_fit" for r in p.rejected)
    assert any(r.num_nodes == 3 and r.reason == "batch_split" for r in p.rejected)
    # clouds whose jobs are one machine never get a multi-node option, and say why
    single = {name for name, info in CLOUDS.items() if not info.multi_node}
    assert single >= {"vast", "runpod"}
    assert all(o.cloud not in single for o in p.options if o.num_nodes > 1)
    dropped = [r for r in p.rejected if r.reason == "multi_node_unsupported"]
    assert {r.cloud for r in dropped} & single and all("one machine" in r.detail for r in dropped)
    assert all(o.num_nodes <= 4 for o in p.options)


def test_the_network_between_nodes_is_in_the_time_model(monkeypatch: pytest.MonkeyPatch) -> None:
    h100 = resolve_gpu("H100")
    link = gpu_link(h100, 16)
    assert link.kind == "network" and link.nodes == 2 and link.gbs == pytest.approx(NETWORK_GBS / GPUS_PER_NODE)
    shape = FULL.model_copy(update={"batch_size": 1, "gpu_count": 16, "parallelism": "fsdp"})
    two_nodes = estimate_throughput(LLAMA70, shape, h100)
    # the same 16 GPUs as if NVLink joined them all: the network is what makes the step slower
    nvlink = link.model_copy(update={"kind": "nvlink", "gbs": h100.interconnect_gbs, "nodes": 1})
    top = _plan(4).options[0]
    monkeypatch.setattr("vibeml.estimate.throughput.gpu_link", lambda gpu, n: nvlink)
    one_fabric = estimate_throughput(LLAMA70, shape, h100)
    assert two_nodes.comm_time_s > 5 * one_fabric.comm_time_s
    assert two_nodes.tokens_per_s < one_fabric.tokens_per_s
    assert top.estimate.throughput.comm_time_s == pytest.approx(two_nodes.comm_time_s, rel=0.05)


def test_a_job_one_node_holds_stays_on_one_node() -> None:
    p = plan_training(
        builtin_architecture("Qwen/Qwen2.5-7B"),
        TrainingShape(seq_len=1024),
        Workload(max_steps=50),
        PRICES,
        PlanConstraints(max_nodes=4),
        policy=BatchPolicy(effective_batch=16),
    )
    assert p.options and all(o.num_nodes == 1 for o in p.options)


def test_the_backend_sets_max_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vibeml_env: Path) -> None:
    from vibeml.client import VibeML, build_request

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n' * 20, encoding="utf-8")
    svc = VibeML()
    fields = {
        "model": "meta-llama/Llama-3.1-70B",
        "dataset": str(data),
        "workflow": "full",
        "gpu_type": "H100",
        "max_steps": 50,
        "effective_batch": 16,
    }
    sky = svc.plan(build_request(**fields, backend="skypilot"))
    assert sky.constraints.max_nodes == 4 and sky.options[0].num_nodes == 2
    option, choice = svc.plan_launch(build_request(**fields, backend="skypilot"))
    assert (choice.gpu_count, choice.num_nodes, choice.strategy) == (8, 2, "fsdp")
    assert choice.hourly_rate == pytest.approx(option.hourly_rate / 2)  # a LaunchChoice's rate is per node
    monkeypatch.setattr("vibeml.backends.vast.backend.VastBackend.live_quotes", lambda self, request: None)
    with pytest.raises(ResourceError):  # a Vast instance is one machine: nothing holds it
        svc.plan(build_request(**fields, backend="vast"))
