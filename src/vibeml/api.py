"""The async Python API (the seed's): one awaitable function per service call.

from vibeml import launch_training, get_job_status
job = await launch_training(model="Qwen/Qwen2.5-0.5B", dataset="./data.jsonl", max_steps=200)

This is the only async layer: the service (``VibeML``) is synchronous, and each function here runs its call
in a worker thread (``asyncio.to_thread``), so the event loop never blocks on files, SQLite or HTTP.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from vibeml.client import VibeML
from vibeml.exceptions import ValidationError
from vibeml.jobs.follow import ProgressCallback, follow_job
from vibeml.jobs.store import check_job_id, check_limit
from vibeml.models import JobRecord

if TYPE_CHECKING:
    from vibeml.results.export import ExportReport
    from vibeml.results.hub import PushReport
    from vibeml.results.service import Generation
from vibeml.settings import Settings

__all__ = [
    "export_model",
    "generate",
    "get_job_logs",
    "get_job_status",
    "launch_training",
    "list_jobs",
    "push_to_hub",
    "resume_training",
    "stop_job",
]


def _service(settings: Settings | None) -> VibeML:
    if settings is not None and not isinstance(settings, Settings):
        raise ValidationError(
            f"settings must be a vibeml.Settings, not {type(settings).__name__}",
            {"settings": type(settings).__name__},
            "Pass settings=Settings.from_env(...) (or leave it out to read the environment).",
        )
    return VibeML(settings or Settings.from_env())


async def launch_training(
    model: str | None = None,
    dataset: str | None = None,
    *,
    demo: bool = False,
    wait: bool = False,
    on_progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    **fields: Any,
) -> JobRecord:
    """Validate, estimate, check the budget and launch; returns once the job has started, or with
    ``wait=True`` once it has ended (completed, failed or stopped; after 24 h of following it returns and the
    job keeps going).

    Takes every ``TrainingRequest`` field (``workflow``, ``backend``, ``max_cost``, ``max_steps``, …).
    ``demo=True`` uses the bundled tiny model and dataset. While waiting, ``on_progress`` (a function or a
    coroutine function) gets the job at the start and on each new step; cancelling the awaiting task stops
    the job (checkpoint and stop, as ``stop_job``), then the cancellation goes on.
    """
    if not isinstance(wait, bool):
        raise ValidationError(
            f"wait must be True or False, not {wait!r}"[:120],
            {"wait": str(wait)[:40]},
            "Pass wait=True or leave it out.",
        )
    if on_progress is not None and not callable(on_progress):
        raise ValidationError(
            f"on_progress must be a function taking the job, not {type(on_progress).__name__}",
            {"on_progress": type(on_progress).__name__},
            "Pass e.g. on_progress=lambda job: print(job.progress), together with wait=True.",
        )
    if on_progress is not None and not wait:
        raise ValidationError(
            "on_progress is only called while waiting: it needs wait=True",
            {"wait": "False"},
            "Pass wait=True to follow the job, or poll get_job_status(job_id) instead.",
        )
    svc = _service(settings)
    # Building a demo request writes its assets on first use: off the event loop as well.
    record = await asyncio.to_thread(lambda: svc.launch(svc.request_from(model, dataset, demo=demo, **fields)))
    if not wait:
        return record
    return await follow_job(svc, record, on_progress)


async def resume_training(job_id: str, *, settings: Settings | None = None, **fields: Any) -> JobRecord:
    """Continue a job that is over from its last complete checkpoint, as a new job (a torn or partial
    newest checkpoint is passed over; the record's ``notes`` say so). ``fields`` change the request:
    ``backend``, ``max_cost``, ``max_steps``, …; ``launch_training(..., resume_from=JOB)`` does the same
    for a request given in full."""
    svc, job_id = _service(settings), check_job_id(job_id)
    return await asyncio.to_thread(lambda: svc.resume(job_id, **fields))


async def get_job_status(job_id: str, *, settings: Settings | None = None) -> JobRecord:
    """A job with its current status, step, loss, ETA and cost so far."""
    return await asyncio.to_thread(_service(settings).get_status, check_job_id(job_id))


async def list_jobs(limit: int = 50, *, settings: Settings | None = None) -> list[JobRecord]:
    """Jobs, newest first (``limit``: 1 to 100,000)."""
    return await asyncio.to_thread(_service(settings).list_jobs, check_limit(limit))


async def get_job_logs(job_id: str, tail: int = 200, *, settings: Settings | None = None) -> list[str]:
    """The last ``tail`` lines of a job's log."""
    tail = check_limit(tail, "tail", 1_000_000)
    svc, job_id = _service(settings), check_job_id(job_id)
    return await asyncio.to_thread(lambda: list(svc.logs(job_id, tail=tail)))


async def stop_job(job_id: str, *, grace_seconds: float | None = None, settings: Settings | None = None) -> JobRecord:
    """Stop a job (checkpointing first); stopping a finished job changes nothing."""
    if grace_seconds is not None and (
        isinstance(grace_seconds, bool)
        or not isinstance(grace_seconds, (int, float))
        or not 0 <= grace_seconds <= 86_400
    ):
        raise ValidationError(
            f"grace_seconds must be a number of seconds from 0 to 86400, not {grace_seconds!r}"[:160],
            {"grace_seconds": str(grace_seconds)[:40]},
            "Give e.g. grace_seconds=30.",
        )
    return await asyncio.to_thread(_service(settings).stop, check_job_id(job_id), grace_seconds)


async def generate(
    job_id: str, prompt: str, *, max_new_tokens: int = 256, device: str = "auto", settings: Settings | None = None
) -> Generation:
    """A completed job's model (its base with the adapter, on this machine) answering ``prompt``."""
    svc, job_id = _service(settings), check_job_id(job_id)
    return await asyncio.to_thread(lambda: svc.generate(job_id, prompt, max_new_tokens=max_new_tokens, device=device))


async def push_to_hub(
    job_id: str, repo_id: str, *, private: bool = False, merged: bool = False, settings: Settings | None = None
) -> PushReport:
    """Push a completed job's adapter (and merged model), tokenizer and model card to the hub."""
    svc, job_id = _service(settings), check_job_id(job_id)
    return await asyncio.to_thread(lambda: svc.push(job_id, repo_id, private=private, merged=merged))


async def export_model(
    job_id: str, *, output_dir: str | None = None, dtype: str = "bfloat16", settings: Settings | None = None
) -> ExportReport:
    """Merge a completed job's adapter into a bf16 (or fp32) reload of its base model."""
    svc, job_id = _service(settings), check_job_id(job_id)
    return await asyncio.to_thread(lambda: svc.export(job_id, merged=True, output_dir=output_dir, dtype=dtype))
