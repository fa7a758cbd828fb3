"""Workflows: how a ``TrainingRequest`` becomes a ``TrainingProgram`` (trainer invocation + JSON config).

A workflow never splices user strings into code: every user value goes into the trainer's JSON config,
and the program is always the same fixed module (``python -m vibeml.trainer --config config.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import ConfigurationError
from vibeml.models import TrainingRequest
from vibeml.trainer.config import TrainerConfig

__all__ = [
    "TrainingProgram",
    "Workflow",
    "get_workflow",
    "list_workflows",
    "register_workflow",
    "render_program",
]

CONFIG_FILENAME = "config.json"


class Workflow(BaseModel):
    """A named recipe: which training method and which packages it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    method: Literal["lora", "full"]
    description: str
    requirements: tuple[str, ...] = Field(description="pip requirements the trainer needs remotely.")


class TrainingProgram(BaseModel):
    """What a backend runs: a fixed trainer module, a config file beside it, and an environment."""

    model_config = ConfigDict(extra="forbid")

    workflow: str
    config: TrainerConfig
    config_filename: str = CONFIG_FILENAME
    module: str = "vibeml.trainer"
    env: dict[str, str] = Field(default_factory=dict)
    requirements: tuple[str, ...] = ()

    def argv(self, python: str, config_path: str | Path) -> list[str]:
        """The command line; the config path is the only argument and it is ours."""
        return [python, "-m", self.module, "--config", str(config_path)]

    def config_json(self) -> str:
        return self.config.model_dump_json(indent=2)


_TRAIN_REQS = (
    "transformers>=5.0,<6",
    "peft>=0.17",
    "trl>=1.0,<2",
    "datasets>=4.0",
    "accelerate>=1.0",
)

_REGISTRY: dict[str, Workflow] = {}


def register_workflow(workflow: Workflow) -> None:
    """Add a workflow (a plugin would call this too)."""
    _REGISTRY[workflow.name] = workflow


register_workflow(
    Workflow(
        name="trl-lora",
        method="lora",
        description="LoRA adapters with TRL's SFTTrainer (default; small, fast, cheap).",
        requirements=_TRAIN_REQS,
    )
)
register_workflow(
    Workflow(
        name="full",
        method="full",
        description="Full fine-tune of every weight with TRL's SFTTrainer (needs ~4x the memory of LoRA).",
        requirements=_TRAIN_REQS,
    )
)


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
) -> TrainingProgram:
    """Render the trainer program for a request. Paths are where the program will run."""
    workflow = get_workflow(request.workflow)
    config = TrainerConfig(
        job_id=job_id,
        model=request.model,
        dataset=request.dataset,
        dataset_format=request.dataset_format,
        dataset_split=request.dataset_split,
        dataset_config=request.dataset_config,
        method=workflow.method,
        hyperparameters=request.hyperparameters,
        output_dir=output_dir,
        checkpoint_dir=checkpoint_dir,
        events_path=events_path,
        save_merged=request.save_merged,
        sample_prompts=list(request.sample_prompts),
        device=device,
        max_runtime_seconds=max_runtime_seconds,
    )
    return TrainingProgram(
        workflow=workflow.name,
        config=config,
        env=dict(env or {}),
        requirements=workflow.requirements,
    )
