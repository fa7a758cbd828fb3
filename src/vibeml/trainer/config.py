"""The trainer's input: one JSON document, validated. User strings travel here as data, never as code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vibeml.models import DatasetFormat, Hyperparameters

__all__ = ["OomFallback", "ScoreExample", "TrainerConfig", "load_config"]


class OomFallback(BaseModel):
    """One safer configuration the trainer retries with after running out of memory in its first steps
    (see :mod:`vibeml.trainer.oom`); it must keep ``batch_size × gradient_accumulation_steps``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(ge=1, le=4096, description="Micro-batch per device.")
    gradient_accumulation_steps: int = Field(ge=1, le=4096)
    gradient_checkpointing: bool | None = Field(
        None, description="None = as the attempt that failed chose it; True/False = on/off for every layer."
    )


class ScoreExample(BaseModel):
    """One held-out prompt and its right answer, scored by exact match before and after training."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, max_length=4096)
    answer: str = Field(min_length=1, max_length=4096)


class TrainerConfig(BaseModel):
    """Everything the trainer needs; written by a workflow, read by ``python -m vibeml.trainer``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    job_id: str = "job"
    model: str
    dataset: str
    dataset_format: DatasetFormat = "auto"
    dataset_split: str = "train"
    dataset_config: str | None = None
    column_mapping: dict[str, str] | None = Field(
        None, description="Rename dataset columns before format detection: {existing: new}."
    )
    method: Literal["lora", "qlora", "full"] = Field(
        "lora", description="lora (bf16 base), qlora (4-bit NF4 base via bitsandbytes) or full."
    )
    engine: Literal["transformers", "unsloth"] = Field(
        "transformers", description="transformers + peft + TRL, or Unsloth's FastLanguageModel (CUDA only)."
    )
    strategy: Literal["single", "ddp", "fsdp"] = Field(
        "single",
        description="single process, data parallel (DDP) or fully sharded (FSDP2); ddp/fsdp run under torchrun "
        "(vibeml.launch), one process per GPU (or per VIBEML_CPU_PROCESSES on a CPU).",
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    output_dir: str = Field(description="Final adapter/model and tokenizer go here.")
    checkpoint_dir: str = Field(description="Checkpoints (resumed from when present).")
    events_path: str = Field(description="JSONL event stream.")
    resume: bool = True
    resume_from_checkpoint: str | None = Field(
        None,
        description="A complete checkpoint folder (of an earlier job) to continue from when checkpoint_dir has none.",
    )
    train_on: Literal["assistant", "all"] = Field(
        "assistant", description="messages/sharegpt rows: the loss on assistant turns only, or on every token."
    )
    save_merged: bool = False
    sample_prompts: list[str] = Field(default_factory=list)
    sample_max_new_tokens: int = Field(32, ge=1, le=4096)
    score_examples: list[ScoreExample] = Field(
        default_factory=list,
        max_length=10_000,
        description="Held-out prompts with their answers: greedy exact match is scored before and after training.",
    )
    score_max_new_tokens: int = Field(8, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_runtime_seconds: float | None = Field(
        None, gt=0, description="Checkpoint and stop once training has run this long (budget cap)."
    )
    torch_threads: int | None = Field(None, ge=1, le=1024)
    # Speed settings; None/"auto" lets the trainer choose for the device it finds (see vibeml.trainer.speed).
    attn_implementation: str = Field(
        "auto",
        pattern=r"^(auto|sdpa|eager|flash_attention_2|flash_attention_3|kernels-community/[A-Za-z0-9_.-]{1,64})$",
        description="auto: flash_attention_2 on CUDA when flash-attn is installed, else sdpa.",
    )
    use_liger_kernel: bool | None = Field(
        None, description="Liger's Triton kernels (TRL keeps its fused LM head); None = on CUDA when installed."
    )
    optim: str | None = Field(
        None, pattern=r"^[a-z0-9_]{1,64}$", description="None = adamw_torch_fused on CUDA, TRL's default elsewhere."
    )
    # evaluation and watching (vibeml.trainer.evaluation)
    eval_split: float | None = Field(None, gt=0, lt=1, description="Held-out fraction of the rows for eval.")
    eval_dataset: str | None = Field(None, description="A separate eval dataset, read like the training data.")
    eval_dataset_split: str = "train"
    keep_best: bool = Field(False, description="Load and deliver the checkpoint with the lowest eval loss.")
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = "none"
    memory_headroom: float = Field(
        0.15, ge=0.0, lt=1.0, description="Share of GPU memory kept free when choosing gradient checkpointing."
    )
    oom_fallbacks: list[OomFallback] | None = Field(
        None,
        max_length=32,
        description="Configurations retried in order when training runs out of memory in its first steps; "
        "None = derived from the hyperparameters (halve the micro-batch, then checkpointing); [] = never retry.",
    )

    @model_validator(mode="after")
    def _fallbacks_keep_effective_batch(self) -> TrainerConfig:
        want = self.hyperparameters.effective_batch_size
        for i, f in enumerate(self.oom_fallbacks or []):
            if f.batch_size * f.gradient_accumulation_steps != want:
                raise ValueError(
                    f"oom_fallbacks[{i}] runs {f.batch_size} x {f.gradient_accumulation_steps} sequences per step, "
                    f"the job {want}: a fallback must keep the effective batch"
                )
        return self


def load_config(path: str | Path) -> TrainerConfig:
    """Read and validate a config file (raises ``ConfigurationError`` with the reason)."""
    from pydantic import ValidationError as PydanticValidationError

    from vibeml.exceptions import ConfigurationError

    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"trainer config not found: {p}", {"path": str(p)}) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(
            f"trainer config {p} is not valid JSON: {exc}",
            {"path": str(p)},
            "Regenerate the job (the config is written by VibeML) or fix the JSON by hand.",
        ) from exc
    try:
        return TrainerConfig.model_validate(raw)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"trainer config {p} is invalid: {problems}",
            {"path": str(p)},
            "Regenerate the job (the config is written by VibeML) or fix the named fields.",
        ) from exc
