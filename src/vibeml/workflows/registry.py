"""Workflows: how a ``TrainingRequest`` becomes a ``TrainingProgram`` (trainer invocation + JSON config).

A workflow never splices user strings into code: every user value goes into the trainer's JSON config,
and the program is always the same fixed module (``python -m vibeml.trainer --config config.json``).
Setup commands and requirements are fixed text per workflow and backend; no user value reaches them.

Built-in workflows:

- ``trl-lora`` (default): LoRA adapters on a bf16 base, TRL's ``SFTTrainer``.
- ``qlora``: LoRA on a 4-bit NF4 base (bitsandbytes); the least memory.
- ``full``: every weight trained.
- ``unsloth``: LoRA through Unsloth's ``FastLanguageModel`` + TRL (CUDA only; setup installs unsloth).

Figures about a workflow (memory, speed, the smallest GPU that fits) come from the estimator, see
:func:`workflow_estimate`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from vibeml.demo.assets import demo_score_examples
from vibeml.exceptions import ConfigurationError
from vibeml.models import TrainingRequest
from vibeml.trainer.config import ScoreExample, TrainerConfig

__all__ = [
    "BACKENDS",
    "TrainingProgram",
    "Workflow",
    "WorkflowEstimate",
    "get_workflow",
    "list_workflows",
    "register_workflow",
    "render_program",
    "resolve_strategy",
    "workflow_estimate",
]

CONFIG_FILENAME = "config.json"
Strategy = Literal["single", "ddp", "fsdp"]
#: What the transformers workflows run: one process, data parallel, fully sharded (FSDP2).
ALL_STRATEGIES: frozenset[str] = frozenset(get_args(Strategy))
#: Backends that get setup commands (``"$PY"`` is the Python that runs the trainer there).
BACKENDS = ("local", "vast", "skypilot")


class Workflow(BaseModel):
    """A named recipe: which training method and engine, and which packages it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    method: Literal["lora", "qlora", "full"]
    description: str
    extras: tuple[str, ...] = Field(
        ("train",), description="VibeML's extras the trainer needs on a rented machine (names from pyproject.toml)."
    )
    lock: str = Field("main", description="The lock (vibeml.locks) whose versions a rented machine installs.")
    requirements: tuple[str, ...] = Field(
        (), description="Further pinned pip requirements (for plugins; built-ins need none beyond their extras)."
    )
    engine: Literal["transformers", "unsloth"] = "transformers"
    requires_cuda: bool = Field(False, description="Runs only on an NVIDIA GPU.")
    strategies: frozenset[str] = Field(
        frozenset({"single"}), description="Parallel strategies the trainer runs this workflow with."
    )
    setup_commands: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Per backend: fixed shell commands that prepare its machine."
    )

    def remote_requirements(self) -> tuple[str, ...]:
        """What a rented machine installs: VibeML's own dependencies with :attr:`extras` and everything they
        need, each at its version in :attr:`lock` (with its environment marker), then :attr:`requirements`.

        Raises:
            ConfigurationError: The lock lacks one of the packages (run ``make lock``).
        """
        return (*_locked_requirements(self.extras, self.lock), *self.requirements)


class TrainingProgram(BaseModel):
    """What a backend runs: a fixed trainer module, a config file beside it, and an environment."""

    model_config = ConfigDict(extra="forbid")

    workflow: str
    config: TrainerConfig
    config_filename: str = CONFIG_FILENAME
    module: str = "vibeml.trainer"
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        exclude=True,
        repr=False,
        description="Secret environment variables (HF_TOKEN): handed to the trainer's process only, never "
        "written to the config, the handle, the store or any log; excluded from every dump.",
    )
    requirements: tuple[str, ...] = ()
    setup_commands: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Per backend (local, vast, skypilot): fixed shell commands to run first."
    )
    requires_cuda: bool = False
    nproc_per_node: int = Field(1, ge=1, le=512, description="Trainer processes per node (one per GPU).")
    nnodes: int = Field(1, ge=1, le=1024, description="Nodes (machines) the processes span.")

    def argv(self, python: str, config_path: str | Path) -> list[str]:
        """The command line on one node (torchrun around the trainer for several processes, see
        :mod:`vibeml.launch`); the config path is the only argument and it is ours."""
        from vibeml.launch import Rendezvous, trainer_command

        return trainer_command(python, config_path, Rendezvous(nproc_per_node=self.nproc_per_node), self.module)

    def config_json(self) -> str:
        return self.config.model_dump_json(indent=2)

    def secret_env(self) -> dict[str, str]:
        """The secrets as plain environment variables, for the process (or machine) that runs the trainer."""
        return {k: v.get_secret_value() for k, v in self.secrets.items() if v.get_secret_value()}

    def setup_for(self, backend: str) -> tuple[str, ...]:
        """Setup commands for ``backend`` (none when it has no entry)."""
        return self.setup_commands.get(backend, ())


@functools.cache
def _locked_requirements(extras: tuple[str, ...], lock: str) -> tuple[str, ...]:
    from vibeml.locks import pinned, project_requirements

    return pinned(project_requirements(extras), lock)


_CHECK_TRAINER = '"$PY" -c "import vibeml.trainer, transformers, peft, trl"'


def _setup(*checks: str) -> dict[str, tuple[str, ...]]:
    """Import checks on every backend. On a rented machine the pinned requirements are installed before
    these run, in one resolve with the shipped VibeML wheel (the Vast onstart, the SkyPilot setup)."""
    checks = (_CHECK_TRAINER, *checks)
    return {"local": checks, "vast": checks, "skypilot": checks}


_REGISTRY: dict[str, Workflow] = {}


def register_workflow(workflow: Workflow) -> None:
    """Add a workflow (a plugin would call this too)."""
    _REGISTRY[workflow.name] = workflow
    workflow_estimate.cache_clear()


def list_workflows() -> list[Workflow]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_workflow(name: str) -> Workflow:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(
            f"unknown workflow {name!r}",
            {"workflow": name, "available": sorted(_REGISTRY)},
            f"Use one of: {known}.",
        ) from None


# --------------------------------------------------------------------------------------- estimates

#: The reference job the figures describe: a 7B model, batch 4 × 2048 tokens, LoRA r=16, on an H100.
REFERENCE_MODEL = "Qwen/Qwen2.5-7B"
REFERENCE_GPU = "H100"
REFERENCE_BATCH = 4
REFERENCE_SEQ = 2048
#: Unsloth is not in the throughput model: its speed-up is the ratio of published MFU midpoints
#: (Unsloth/Liger 35–50 % vs HF+PEFT LoRA 25–35 %, FACTS), applied to the LoRA estimate.
UNSLOTH_MFU_RATIO = (0.35 + 0.50) / (0.25 + 0.35)


class WorkflowEstimate(BaseModel):
    """What the estimator says about a workflow on the reference job (see ``REFERENCE_*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str
    model: str
    gpu: str
    batch_size: int
    seq_len: int
    memory_gib: float = Field(description="nvidia-smi memory with gradient checkpointing on every layer.")
    memory_no_checkpointing_gib: float
    tokens_per_s: float = Field(description="With the checkpointing the trainer would choose on this GPU.")
    relative_speed: float = Field(description="tokens/s relative to trl-lora.")
    gradient_checkpointing: str = Field(description="What the trainer would choose, and why.")
    smallest_gpu: str | None = Field(description="The catalogued GPU with the least memory that fits (with GC).")
    notes: tuple[str, ...] = ()


def _raw_estimate(method: Literal["lora", "qlora", "full"]) -> tuple[float, float, float, str, str | None]:
    from vibeml.catalog.architectures import builtin_architecture
    from vibeml.catalog.gpus import list_gpus, resolve_gpu
    from vibeml.estimate.memory import TrainingShape, estimate_memory
    from vibeml.estimate.throughput import estimate_throughput
    from vibeml.trainer.speed import choose_gradient_checkpointing

    arch = builtin_architecture(REFERENCE_MODEL, fuzzy=False)
    if arch is None:  # pragma: no cover - the reference model is in the built-in table
        raise ConfigurationError(f"reference model {REFERENCE_MODEL} is not in the catalogue")
    gpu = resolve_gpu(REFERENCE_GPU)
    shape = TrainingShape(method=method, batch_size=REFERENCE_BATCH, seq_len=REFERENCE_SEQ, lora_r=16)
    on = shape.model_copy(update={"gradient_checkpointing": True})
    off = shape.model_copy(update={"gradient_checkpointing": False})
    mem_on = estimate_memory(arch, on, gpu).total_gib
    mem_off = estimate_memory(arch, off, gpu).total_gib
    choice = choose_gradient_checkpointing(arch, shape, gpu.memory_gib)
    run_shape = on if choice.enabled else off
    tps = estimate_throughput(arch, run_shape, gpu).tokens_per_s
    if choice.enabled and choice.every_n_layers > 1:  # partial: interpolate the recompute cost
        tps_off = estimate_throughput(arch, off, gpu).tokens_per_s
        share = 1.0 / choice.every_n_layers
        tps = 1.0 / (share / tps + (1.0 - share) / tps_off)
    fitting = [g for g in list_gpus() if estimate_memory(arch, on, g).fits]
    smallest = min(fitting, key=lambda g: (g.memory_gib, g.name)).name if fitting else None
    return mem_on, mem_off, tps, choice.reason, smallest


@functools.cache
def workflow_estimate(name: str) -> WorkflowEstimate:
    """Memory, speed and the smallest fitting GPU of workflow ``name`` on the reference job (cached).

    Raises:
        ConfigurationError: Unknown workflow.
    """
    wf = get_workflow(name)
    mem_on, mem_off, tps, reason, smallest = _raw_estimate(wf.method)
    base_tps = _raw_estimate("lora")[2]
    notes: list[str] = []
    if wf.engine == "unsloth":
        tps *= UNSLOTH_MFU_RATIO
        notes.append(
            f"Unsloth speed = LoRA estimate × {UNSLOTH_MFU_RATIO:.2f} (published MFU ranges); memory "
            "modelled as TRL LoRA (Unsloth usually needs less)"
        )
    if wf.method == "qlora":
        notes.append("QLoRA memory is modelled, not calibrated")
    return WorkflowEstimate(
        workflow=wf.name,
        model=REFERENCE_MODEL,
        gpu=REFERENCE_GPU,
        batch_size=REFERENCE_BATCH,
        seq_len=REFERENCE_SEQ,
        memory_gib=round(mem_on, 1),
        memory_no_checkpointing_gib=round(mem_off, 1),
        tokens_per_s=round(tps),
        relative_speed=round(tps / base_tps, 2),
        gradient_checkpointing=reason,
        smallest_gpu=smallest,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------ registrations

register_workflow(
    Workflow(
        name="trl-lora",
        method="lora",
        description="LoRA adapters on a bf16 base with TRL's SFTTrainer (default).",
        # Liger's Triton kernels (CUDA only; the trainer turns them on when installed): +20 % tokens/s measured
        # on an H100 (FACTS: TRL 7,093 → TRL + Liger 8,526 tok/s)
        extras=("train", "speed"),
        setup_commands=_setup(),
        strategies=frozenset({"single", "ddp", "fsdp"}),
    )
)
register_workflow(
    Workflow(
        name="qlora",
        method="qlora",
        description="LoRA on a 4-bit NF4 base (bitsandbytes) with TRL's SFTTrainer: the least GPU memory.",
        extras=("train", "speed", "qlora"),
        # FSDP2 cannot shard bitsandbytes' packed 4-bit weights (vibeml.trainer.parallel.check_strategy)
        setup_commands=_setup('"$PY" -c "import bitsandbytes"'),
        strategies=frozenset({"single", "ddp"}),
    )
)
register_workflow(
    Workflow(
        name="full",
        method="full",
        description="Full fine-tune of every weight with TRL's SFTTrainer.",
        # Liger's Triton kernels (CUDA only; the trainer turns them on when installed): +20 % tokens/s measured
        # on an H100 (FACTS: TRL 7,093 → TRL + Liger 8,526 tok/s)
        extras=("train", "speed"),
        setup_commands=_setup(),
        strategies=frozenset({"single", "ddp", "fsdp"}),
    )
)
register_workflow(
    Workflow(
        name="unsloth",
        method="lora",
        engine="unsloth",
        requires_cuda=True,
        description="LoRA through Unsloth's FastLanguageModel with TRL's SFTTrainer (NVIDIA GPUs only).",
        # Unsloth caps transformers/trl/datasets below the main lock's versions: it has a lock of its own
        extras=("train", "unsloth"),
        lock="unsloth",
        setup_commands=_setup('"$PY" -c "import unsloth"'),
        strategies=frozenset({"single"}),
    )
)


def render_program(
    request: TrainingRequest,
    job_id: str,
    *,
    output_dir: str,
    checkpoint_dir: str,
    events_path: str,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    max_runtime_seconds: float | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, SecretStr] | None = None,
    gpu_count: int | None = None,
    num_nodes: int = 1,
    strategy: str | None = None,
    resume_from_checkpoint: str | None = None,
) -> TrainingProgram:
    """Render the trainer program for a request. Paths are where the program will run.

    ``gpu_count`` (per node; default the request's) and ``num_nodes`` are what the job runs on, one trainer
    process per GPU; ``strategy`` (default the request's) is resolved by :func:`resolve_strategy`.
    """
    workflow = get_workflow(request.workflow)
    per_node = gpu_count if gpu_count is not None else request.gpu_count
    chosen = resolve_strategy(workflow, strategy or getattr(request, "strategy", None), per_node * num_nodes)
    config = TrainerConfig(
        job_id=job_id,
        model=request.model,
        dataset=request.dataset,
        dataset_format=request.dataset_format,
        dataset_split=request.dataset_split,
        dataset_config=request.dataset_config,
        column_mapping=getattr(request, "column_mapping", None),  # when TrainingRequest carries one
        method=workflow.method,
        engine=workflow.engine,
        strategy=chosen,
        hyperparameters=request.hyperparameters,
        output_dir=output_dir,
        checkpoint_dir=checkpoint_dir,
        events_path=events_path,
        save_merged=request.save_merged,
        sample_prompts=list(request.sample_prompts),
        score_examples=[ScoreExample.model_validate(e) for e in demo_score_examples(request.dataset)],  # as data
        device=device,
        max_runtime_seconds=max_runtime_seconds,
        resume_from_checkpoint=resume_from_checkpoint,
        train_on=getattr(request, "train_on", "assistant"),
        eval_split=request.eval_split,
        eval_dataset=request.eval_dataset,
        eval_dataset_split=request.eval_dataset_split,
        keep_best=request.keep_best,
        report_to=request.report_to,
    )
    return TrainingProgram(
        workflow=workflow.name,
        config=config,
        env=dict(env or {}),
        secrets=dict(secrets or {}),
        requirements=workflow.remote_requirements(),
        setup_commands=dict(workflow.setup_commands),
        requires_cuda=workflow.requires_cuda,
        nproc_per_node=per_node,
        nnodes=num_nodes,
    )


def resolve_strategy(workflow: Workflow, requested: str | None, processes: int) -> Strategy:
    """The strategy a job of ``processes`` trainer processes runs: ``single`` for one; for several the one
    asked for (default ``ddp``) when the workflow supports it.

    Raises:
        ConfigurationError: ``single`` with several processes, or a strategy the workflow lacks.
    """
    if processes <= 1:
        return "single"  # one process: nothing to distribute, whatever was asked
    chosen = requested or "ddp"
    ctx = {"workflow": workflow.name, "strategy": chosen, "processes": processes}
    if chosen not in ALL_STRATEGIES:
        raise ConfigurationError(
            f"unknown strategy {chosen!r}", ctx, f"Use one of: {', '.join(sorted(ALL_STRATEGIES))}."
        )
    if chosen == "single":
        raise ConfigurationError(
            f"strategy 'single' runs one process, but the job has {processes} GPUs",
            ctx,
            "Ask for one GPU, or use --strategy ddp or fsdp.",
        )
    if chosen not in workflow.strategies:
        has = ", ".join(sorted(workflow.strategies))
        raise ConfigurationError(
            f"the {workflow.name} workflow cannot run with strategy {chosen!r} (it supports: {has})",
            ctx,
            "Pick a supported strategy, or a workflow that has it (trl-lora and full run ddp and fsdp).",
        )
    return chosen  # type: ignore[return-value]
