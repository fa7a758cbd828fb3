"""Joint auto-configuration (issue 15 item 1): per GPU choice the planner picks micro-batch × accumulation ×
checkpointing × count × strategy for the lowest expected cost, with headroom, keeping the effective batch."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vibeml.catalog import builtin_architecture, load_price_table, resolve_gpu
from vibeml.estimate import PlanConstraints, TrainingShape, Workload, estimate_job, plan_training
from vibeml.estimate.autoconfig import PLANNER_HEADROOM, BatchPolicy, NoConfig, choose_config
from vibeml.exceptions import BudgetExceededError, ResourceError

PRICES = load_price_table()
MODELS = ["HuggingFaceTB/SmolLM2-360M", "Qwen/Qwen2.5-1.5B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-14B"]


@settings(max_examples=30, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    method=st.sampled_from(["lora", "qlora", "full"]),
    effective=st.sampled_from([1, 2, 4, 6, 8, 16, 32]),
    seq=st.sampled_from([512, 2048, 4096]),
    micro=st.one_of(st.none(), st.sampled_from([1, 2, 4])),
    gc=st.sampled_from([None, True, False]),
)
def test_every_choice_fits_with_headroom_keeps_the_batch_and_the_explicit_values(
    model: str, method: str, effective: int, seq: int, micro: int | None, gc: bool | None
) -> None:
    arch = builtin_architecture(model)
    policy = BatchPolicy(effective_batch=effective, micro_batch=micro, gradient_checkpointing=gc)
    shape = TrainingShape(method=method, seq_len=seq)
    try:
        p = plan_training(arch, shape, Workload(max_steps=50), PRICES, policy=policy)
    except (ResourceError, BudgetExceededError):
        return
    for o in p.options:
        assert o.memory_gib <= o.capacity_gib * (1 - PLANNER_HEADROOM) + 1e-9
        assert o.micro_batch * o.grad_accum * o.gpu_count == effective == o.effective_batch
        assert micro is None or o.micro_batch == micro
        assert gc is None or o.gradient_checkpointing == gc
        assert o.estimate.shape.batch_size == o.micro_batch
        assert o.estimate.shape.gradient_checkpointing == o.gradient_checkpointing
        assert o.estimate.time.tokens == o.estimate.time.steps * effective * o.estimate.time.effective_seq_len
        assert sum(t.chosen for t in o.trials) == 1


@settings(max_examples=25, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    micro=st.sampled_from([1, 2, 4, 8]),
    accum=st.sampled_from([1, 2, 4]),
    gc=st.booleans(),
    seq=st.sampled_from([512, 2048]),
)
def test_the_chosen_configuration_costs_no_more_than_the_users_on_the_same_gpu(
    model: str, micro: int, accum: int, gc: bool, seq: int
) -> None:
    arch = builtin_architecture(model)
    fixed = TrainingShape(batch_size=micro, seq_len=seq, gradient_checkpointing=gc)
    workload = Workload(max_steps=100, gradient_accumulation_steps=accum)
    try:
        p = plan_training(arch, fixed, workload, PRICES, PlanConstraints(gpu_counts=(1,)))
    except ResourceError:
        return
    for o in p.options:
        user = estimate_job(arch, fixed, resolve_gpu(o.gpu), workload, o.estimate.quote)
        if user.memory.total_gib <= o.capacity_gib * (1 - PLANNER_HEADROOM):
            assert o.expected_cost <= user.cost.expected_cost + 1e-9, (o.gpu, o.micro_batch, o.grad_accum)


def test_fully_fixed_values_are_never_overridden() -> None:
    arch = builtin_architecture("Qwen/Qwen2.5-7B")
    policy = BatchPolicy(effective_batch=16, micro_batch=4, grad_accum=4, gradient_checkpointing=True)
    p = plan_training(arch, TrainingShape(seq_len=2048), Workload(max_steps=50), PRICES, policy=policy)
    assert p.options and all(
        (o.micro_batch, o.grad_accum, o.gradient_checkpointing, o.gpu_count) == (4, 4, True, 1) for o in p.options
    )
    assert any(r.reason == "batch_split" for r in p.rejected)  # 16 = 4 × 4 leaves no room for more GPUs


def _qwen7_plan() -> dict[str, object]:
    arch = builtin_architecture("Qwen/Qwen2.5-7B")
    p = plan_training(
        arch,
        TrainingShape(seq_len=2048),
        Workload(max_steps=500),
        PRICES,
        PlanConstraints(gpu_counts=(1,)),
        policy=BatchPolicy(effective_batch=16),
    )
    return {o.gpu: o for o in p.options}


def test_qwen7b_lora_h100_without_checkpointing_24gb_with_it() -> None:
    rows = _qwen7_plan()
    h100, rtx = rows["H100"], rows["RTX 4090"]
    assert not h100.gradient_checkpointing and h100.micro_batch * h100.grad_accum == 16  # type: ignore[attr-defined]
    assert rtx.gradient_checkpointing and rtx.micro_batch * rtx.grad_accum == 16  # type: ignore[attr-defined]
    # and the reason: on the 24 GB card even micro-batch 1 without checkpointing is over the budget
    cfg = choose_config(
        builtin_architecture("Qwen/Qwen2.5-7B"),
        TrainingShape(seq_len=2048, batch_size=1),
        Workload(max_steps=500),
        resolve_gpu("RTX 4090"),
        1,
        BatchPolicy(effective_batch=16, gradient_checkpointing=False),
    )
    assert isinstance(cfg, NoConfig) and cfg.reason == "does_not_fit"


def test_launch_dry_run_carries_the_plans_configuration(vibeml_env: Path, tmp_path: Path) -> None:
    from vibeml.cli.main import app

    data = tmp_path / "long.jsonl"
    row = json.dumps({"instruction": "word " * 1000, "output": "answer " * 800})
    data.write_text((row + "\n") * 64, encoding="utf-8")
    for gpu, gc in (("H100", False), ("RTX 4090", True)):
        args = ["launch", "--backend", "skypilot", "--model", "Qwen/Qwen2.5-7B", "--dataset", str(data)]
        args += ["--max-steps", "200", "--max-seq-length", "2048", "--effective-batch", "16", "--max-cost", "40"]
        res = CliRunner().invoke(app, [*args, "--gpu", gpu, "--gpu-count", "1", "--dry-run", "--json"])
        assert res.exit_code == 0, res.output
        preview = json.loads(res.stdout)
        hp, best = preview["request"]["hyperparameters"], preview["plan"]["options"][0]
        assert best["gpu"] == gpu and best["gradient_checkpointing"] is gc
        assert (hp["batch_size"], hp["gradient_accumulation_steps"], hp["gradient_checkpointing"]) == (
            best["micro_batch"],
            best["grad_accum"],
            gc,
        )
        assert hp["batch_size"] * hp["gradient_accumulation_steps"] == 16
        assert preview["choice"]["strategy"] == best["strategy"] == "single"
