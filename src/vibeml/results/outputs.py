"""What a finished job delivered, found and checked before anything heavy is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vibeml.exceptions import ConfigurationError, ModelNotFoundError
from vibeml.models import JobRecord, JobStatus

__all__ = ["JobOutput", "job_output"]

ADAPTER_CONFIG = "adapter_config.json"


class JobOutput(BaseModel):
    """A completed job's result folder: a LoRA adapter (lora, qlora, unsloth) or a whole model (full)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    kind: Literal["adapter", "full"]
    path: Path
    base_model: str
    workflow: str
    method: Literal["lora", "qlora", "full"]


def _method(record: JobRecord, kind: str) -> Literal["lora", "qlora", "full"]:
    from vibeml.workflows.registry import get_workflow

    try:
        return get_workflow(record.request.workflow).method
    except ConfigurationError:  # a plugin workflow that is no longer registered: the files say what it is
        return "lora" if kind == "adapter" else "full"


def job_output(record: JobRecord) -> JobOutput:
    """The job's delivered result.

    Raises:
        ConfigurationError: The job has not completed (still running, failed or stopped).
        ModelNotFoundError: It completed, but its output folder holds no adapter or model (moved or deleted).
    """
    job = record.job_id
    if record.status is not JobStatus.COMPLETED:
        if record.status.is_terminal:
            hint = (
                f"It ended {record.status.value}"
                + (f" ({record.error})" if record.error else "")
                + ": launch it again (or resume it from its checkpoint), then use the finished job."
            )
        else:
            hint = f"Wait for it to finish: `vibeml status {job}` (or `vibeml launch ... --follow`)."
        raise ConfigurationError(
            f"job {job} is {record.status.value}, not completed: it has no finished adapter to use yet",
            {"job_id": job, "status": record.status.value},
            hint,
        )
    out = Path(record.output_dir) if record.output_dir else None
    if out is not None and (out / ADAPTER_CONFIG).is_file():
        kind: Literal["adapter", "full"] = "adapter"
    elif out is not None and (out / "config.json").is_file():
        kind = "full"
    else:
        raise ModelNotFoundError(
            f"job {job} completed, but its output folder {out} holds no adapter ({ADAPTER_CONFIG}) or model",
            {"job_id": job, "output_dir": str(out) if out else None},
            "The folder was moved or deleted; put the adapter back there, or train again.",
        )
    return JobOutput(
        job_id=job,
        kind=kind,
        path=out,
        base_model=record.request.model,
        workflow=record.request.workflow,
        method=_method(record, kind),
    )
