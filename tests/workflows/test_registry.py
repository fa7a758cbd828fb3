"""The workflow registry: four workflows, estimator-backed figures, programs per backend, compatible API."""

from __future__ import annotations

import pytest

from vibeml.catalog.architectures import builtin_architecture
from vibeml.catalog.gpus import resolve_gpu
from vibeml.estimate.memory import TrainingShape, estimate_memory
from vibeml.exceptions import ConfigurationError
from vibeml.models import TrainingRequest
from vibeml.trainer.config import TrainerConfig
from vibeml.workflows import TrainingProgram, Workflow, get_workflow, list_workflows, render_program
from vibeml.workflows.registry import (
    BACKENDS,
    REFERENCE_BATCH,
    REFERENCE_GPU,
    REFERENCE_MODEL,
    REFERENCE_SEQ,
    register_workflow,
    workflow_estimate,
)

NAMES = ("full", "qlora", "trl-lora", "unsloth")


def program(workflow: str, **fields: object) -> TrainingProgram:
    request = TrainingRequest.model_validate(
        {"model": "Qwen/Qwen2.5-0.5B", "dataset": "data.jsonl", "workflow": workflow, **fields}
    )
    return render_program(request, "job-1", output_dir="/out", checkpoint_dir="/ckpt", events_path="/ev.jsonl")


def test_the_four_workflows() -> None:
    assert {w.name for w in list_workflows()} >= set(NAMES)
    assert (get_workflow("trl-lora").method, get_workflow("qlora").method, get_workflow("full").method) == (
        "lora",
        "qlora",
        "full",
    )
    unsloth = get_workflow("unsloth")
    assert unsloth.engine == "unsloth" and unsloth.requires_cuda and unsloth.method == "lora"
    assert all(not get_workflow(n).requires_cuda for n in ("trl-lora", "qlora", "full"))
    with pytest.raises(ConfigurationError) as err:
        get_workflow("nope")
    assert "trl-lora" in (err.value.recovery_suggestion or "")


@pytest.mark.parametrize("name", NAMES)
def test_programs_carry_method_engine_requirements_and_setup(name: str) -> None:
    wf = get_workflow(name)
    prog = program(name, max_steps=10)
    assert prog.workflow == name and prog.config.method == wf.method and prog.config.engine == wf.engine
    assert prog.argv("python", "/job/config.json") == ["python", "-m", "vibeml.trainer", "--config", "/job/config.json"]
    assert prog.requirements == wf.remote_requirements() and prog.requires_cuda == wf.requires_cuda
    assert set(prog.setup_commands) == set(BACKENDS)
    for backend in ("vast", "skypilot"):  # the install happens before (with the shipped wheel): checks only
        assert prog.setup_for(backend) == prog.setup_for("local")
        assert not any("pip" in c for c in prog.setup_for(backend))
    assert prog.setup_for("nowhere") == ()
    assert all(req.split(";")[0].count("==") == 1 for req in prog.requirements)  # pinned (tests/test_lock.py)
    extra = {"qlora": "bitsandbytes==", "unsloth": "unsloth=="}.get(name)
    if extra:
        assert any(r.startswith(extra) for r in prog.requirements)
        assert any(extra.split("==")[0] in c for c in prog.setup_for("local"))


def test_render_program_is_backward_compatible() -> None:
    request = TrainingRequest(model="m/x", dataset="d.jsonl")
    prog = render_program(
        request,
        "j",
        output_dir="o",
        checkpoint_dir="c",
        events_path="e",
        device="cpu",
        max_runtime_seconds=60.0,
        env={"A": "1"},
    )
    assert prog.workflow == "trl-lora" and prog.env == {"A": "1"} and prog.config.max_runtime_seconds == 60.0
    assert prog.config_filename == "config.json" and prog.module == "vibeml.trainer"
    assert TrainerConfig.model_validate_json(prog.config_json()) == prog.config
    # programs rendered before this change (no setup_commands/requires_cuda) still load
    old = TrainingProgram.model_validate({"workflow": "trl-lora", "config": prog.config.model_dump()})
    assert old.setup_commands == {} and old.requires_cuda is False
    # old trainer configs (no engine/speed fields) still load, as lora on transformers
    legacy = prog.config.model_dump()
    for key in ("engine", "column_mapping", "attn_implementation", "use_liger_kernel", "optim", "memory_headroom"):
        legacy.pop(key)
    assert TrainerConfig.model_validate(legacy).engine == "transformers"


def test_register_a_plugin_workflow() -> None:
    wf = Workflow(name="my-lora", method="lora", description="plugin", requirements=("peft==0.21.2",))
    register_workflow(wf)
    try:
        assert get_workflow("my-lora") is wf and program("my-lora").config.method == "lora"
        assert program("my-lora").requirements[-1] == "peft==0.21.2"  # after the locked training set
        assert workflow_estimate("my-lora").relative_speed == 1.0
    finally:
        from vibeml.workflows import registry

        registry._REGISTRY.pop("my-lora")
        workflow_estimate.cache_clear()


def test_figures_come_from_the_estimator() -> None:
    arch = builtin_architecture(REFERENCE_MODEL, fuzzy=False)
    assert arch is not None
    gpu = resolve_gpu(REFERENCE_GPU)
    for name in NAMES:
        est = workflow_estimate(name)
        method = get_workflow(name).method
        shape = TrainingShape(
            method=method, batch_size=REFERENCE_BATCH, seq_len=REFERENCE_SEQ, gradient_checkpointing=True
        )
        assert est.memory_gib == round(estimate_memory(arch, shape, gpu).total_gib, 1)
        assert est.tokens_per_s > 0 and est.smallest_gpu is not None
    lora, qlora, full, unsloth = (workflow_estimate(n) for n in ("trl-lora", "qlora", "full", "unsloth"))
    assert qlora.memory_gib < lora.memory_gib < full.memory_gib
    assert lora.relative_speed == 1.0 and unsloth.relative_speed > 1.0 and unsloth.notes
    assert resolve_gpu(qlora.smallest_gpu or "").memory_gib <= resolve_gpu(lora.smallest_gpu or "").memory_gib
    assert resolve_gpu(full.smallest_gpu or "").memory_gib >= 40
    assert "layer" in lora.gradient_checkpointing or "fits" in lora.gradient_checkpointing
