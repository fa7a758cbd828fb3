"""Continuing an earlier job: ``vibeml resume JOB``, ``vibeml launch --resume-from JOB``, ``resume_training``.

A resumed run is a new job (its own id, folder, ledger line and budget check) whose trainer starts from
the earlier job's newest *complete* checkpoint (see :mod:`vibeml.trainer.checkpoints`: a torn or partial
newer one is passed over, and the launch says so). The checkpoint is read where the earlier job left it
on this machine (``<jobs dir>/<job>/checkpoints``: a local job's own, or the one a Vast job brought back
when it stopped); a rented machine gets it uploaded with the other local inputs.

The earlier job must be over (stop it first), and the new run must train the same base model with the
same kind of weights (LoRA adapters or full weights): anything else cannot load the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vibeml.exceptions import ConfigurationError
from vibeml.models import Hyperparameters, TrainingRequest
from vibeml.trainer.checkpoints import find_resume_point
from vibeml.workflows.registry import get_workflow

if TYPE_CHECKING:
    from vibeml.client import VibeML

__all__ = ["ResumeSource", "resume_request", "resume_source"]


@dataclass(frozen=True)
class ResumeSource:
    """The checkpoint a new job continues from, and what was passed over on the way."""

    job_id: str
    checkpoint: Path
    step: int
    notes: list[str] = field(default_factory=list)


def _same_model(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.is_absolute() or pb.is_absolute():
        try:
            return pa.resolve() == pb.resolve()
        except OSError:
            return a == b
    return a == b


def resume_source(svc: VibeML, request: TrainingRequest) -> ResumeSource | None:
    """The earlier job's newest complete checkpoint for ``request.resume_from`` (None when not resuming).

    Raises:
        JobNotFoundError: No such job.
        ConfigurationError: The job is still running, trained another model or method, or left no
            complete checkpoint on this machine.
    """
    if request.resume_from is None:
        return None
    record = svc.get_status(request.resume_from)
    ctx: dict[str, Any] = {"resume_from": record.job_id}
    if not record.status.is_terminal:
        raise ConfigurationError(
            f"job {record.job_id} is still {record.status.value}: it cannot be resumed while it runs",
            {**ctx, "status": record.status.value},
            f"Stop it first (`vibeml stop {record.job_id}`: it checkpoints), then resume it.",
        )
    if not _same_model(record.request.model, request.model):
        raise ConfigurationError(
            f"job {record.job_id} trained {record.request.model}, not {request.model}: its checkpoint cannot be loaded",
            {**ctx, "model": request.model, "job_model": record.request.model},
            "Resume with the job's own model (`vibeml resume JOB` keeps it), or launch afresh.",
        )
    old, new = get_workflow(record.request.workflow).method, get_workflow(request.workflow).method
    if (old == "full") != (new == "full"):
        raise ConfigurationError(
            f"job {record.job_id} saved {'full weights' if old == 'full' else 'LoRA adapters'}; "
            f"workflow {request.workflow} trains {'full weights' if new == 'full' else 'LoRA adapters'}",
            {**ctx, "workflow": request.workflow, "job_workflow": record.request.workflow},
            "Resume with the job's own workflow (`vibeml resume JOB` keeps it).",
        )
    folder = svc.job_dir(record.job_id) / "checkpoints"
    point = find_resume_point(folder)
    if point.checkpoint is None:
        why = "; ".join(f"{p.name}: {reason}" for p, reason in point.skipped) or "none was saved"
        raise ConfigurationError(
            f"job {record.job_id} left no complete checkpoint in {folder} ({why})",
            {**ctx, "checkpoint_dir": str(folder)},
            "Checkpoints are saved every save_steps steps and when a job is stopped; launch afresh, or resume "
            "a job that saved one.",
        )
    return ResumeSource(record.job_id, point.checkpoint, point.step, point.notes())


def resume_request(svc: VibeML, job_id: str, **overrides: Any) -> TrainingRequest:
    """The earlier job's request, continuing from its checkpoint, with ``overrides`` laid over it (request
    fields, flat or in ``hyperparameters``: e.g. ``backend``, ``max_cost``, ``max_steps``). The effective batch
    is kept; how the earlier run split it per process is not, so a resume on another GPU count or machine
    splits it anew.

    Raises:
        JobNotFoundError: No such job.
        ValidationError: An override is unknown or out of range.
    """
    from vibeml.client import build_request

    record = svc.store.find(job_id)
    base = record.request.model_dump(mode="json", exclude={"resume_from"})
    hyper = dict(base.pop("hyperparameters"))
    nested = overrides.pop("hyperparameters", None)
    if isinstance(nested, Hyperparameters):
        nested = nested.model_dump(exclude_unset=True)
    given: dict[str, Any] = dict(nested) if isinstance(nested, dict) else {}
    if nested is not None and not isinstance(nested, dict):
        overrides["hyperparameters"] = nested  # validation names the wrong type
    for key in list(overrides):
        if key in Hyperparameters.model_fields:
            given[key] = overrides.pop(key)
    given = {k: v for k, v in given.items() if v is not None}
    if "max_steps" in given:
        hyper["num_epochs"] = None
    if "num_epochs" in given:
        hyper["max_steps"] = None
    batch_keys = ("batch_size", "gradient_accumulation_steps")
    if "effective_batch" not in given:
        # the effective batch is what the run trained with: the new layout keeps it (unless the resume gives a
        # whole new batch: micro-batch and accumulation, read as a fresh launch reads them)
        stored = record.request.hyperparameters
        kept = stored.effective_batch or stored.batch_size * stored.gradient_accumulation_steps
        hyper["effective_batch"] = None if all(k in given for k in batch_keys) else kept
    else:  # a new effective batch: the earlier split of the old one means nothing for it
        for k in batch_keys:
            hyper.pop(k, None)
    hyper.update(given)
    fields = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    request = build_request(**{**fields, "hyperparameters": hyper, "resume_from": record.job_id})
    # How the earlier layout split that batch (micro-batch × accumulation per process) is a preference, not a
    # setting: on another GPU count or machine the plan (or the processes' split) chooses anew, as it does for
    # a batch VibeML chose. What the resume itself gives is kept as given.
    request.hyperparameters.__pydantic_fields_set__.difference_update(k for k in batch_keys if k not in given)
    return request
