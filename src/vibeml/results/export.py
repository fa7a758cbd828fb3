"""Merge a job's LoRA adapter into its base model: the base is reloaded in bf16 (or fp32) on the CPU, never
the 4-bit model a QLoRA job trained on, and the merged weights and tokenizer are written to a new folder."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import ConfigurationError, ResourceError, TrainingError
from vibeml.results.outputs import JobOutput

__all__ = ["ExportReport", "MergeDtype", "check_can_merge", "merge_adapter"]

MergeDtype = Literal["bfloat16", "float32"]


class ExportReport(BaseModel):
    """What ``vibeml export --merged`` wrote."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    merged: bool = True
    output_dir: str = Field(description="The merged model and tokenizer (load with AutoModelForCausalLM).")
    base_model: str
    dtype: MergeDtype
    workflow: str
    seconds: float
    files: list[str]


def check_can_merge(output: JobOutput) -> None:
    """Raise when the job's result cannot be merged.

    Raises:
        ConfigurationError: A full fine-tune (its output already is the whole model; there is no adapter).
    """
    if output.kind == "full":
        raise ConfigurationError(
            f"job {output.job_id} ({output.workflow}) trained every weight: its output is already a whole model, "
            "with no adapter to merge",
            {"job_id": output.job_id, "workflow": output.workflow},
            f"Use {output.path} as it is (AutoModelForCausalLM.from_pretrained), or `vibeml push` it.",
        )


def merge_adapter(output: JobOutput, dest: Path, *, dtype: MergeDtype = "bfloat16") -> ExportReport:
    """Merge the adapter into a fresh ``dtype`` load of the base and save it to ``dest`` (which must not hold
    anything yet); written to a temporary folder beside it first, so a failed merge leaves no half model.

    Raises:
        ConfigurationError: Nothing to merge (a full fine-tune), or ``dest`` is a file or a non-empty folder.
        ModelNotFoundError: The base model cannot be loaded.
        ResourceError: No disk space.
        TrainingError: peft could not merge the adapter.
    """
    check_can_merge(output)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigurationError(
            f"{dest} already exists and is not an empty folder",
            {"output_dir": str(dest)},
            "Choose another folder with -o DIR, or remove that one first.",
        )
    t0 = time.monotonic()
    from peft import PeftModel
    from transformers import AutoTokenizer

    from vibeml.results.inference import fit_embeddings
    from vibeml.trainer.modeling import load_model

    tokenizer = AutoTokenizer.from_pretrained(str(output.path))
    base = load_model(output.base_model, dtype)  # full precision, on the CPU: never the 4-bit training copy
    fit_embeddings(base, tokenizer)
    try:
        merged = PeftModel.from_pretrained(base, str(output.path)).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as exc:
        raise TrainingError(
            f"merging the adapter of job {output.job_id} into {output.base_model} failed: {exc}",
            {"job_id": output.job_id, "base_model": output.base_model},
            "The adapter is intact in its output folder; check that it was trained on this base model.",
        ) from exc
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ResourceError(
            f"could not write the merged model to {dest}: {exc.strerror or exc}",
            {"output_dir": str(dest)},
            "Free disk space, or choose another folder with -o DIR.",
        ) from exc
    return ExportReport(
        job_id=output.job_id,
        output_dir=str(dest),
        base_model=output.base_model,
        dtype=dtype,
        workflow=output.workflow,
        seconds=round(time.monotonic() - t0, 2),
        files=sorted(p.name for p in dest.iterdir()),
    )
