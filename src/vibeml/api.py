"""The async Python API (the seed's): one awaitable function per service call.

from vibeml import launch_training, get_job_status
job = await launch_training(model="Qwen/Qwen2.5-0.5B", dataset="./data.jsonl", max_steps=200)

This is the only async layer: the service (``VibeML``) is synchronous, and each function here runs its call
in a worker thread (``asyncio.to_thread``), so the event loop never blocks on files, SQLite or HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vibeml.client import VibeML
from vibeml.exceptions import ValidationError
from vibeml.jobs.store import check_job_id, check_limit
from vibeml.models import JobRecord
from vibeml.settings import Settings

__all__ = ["get_job_logs", "get_job_status", "launch_training", "list_jobs", "resume_training", "stop_job"]


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
    settings: Settings | None = None,
    **fields: Any,
) -> JobRecord:
    """Validate, estimate, check the budget and launch; returns once the job has started.

    Takes every ``TrainingRequest`` field (``workflow``, ``backend``, ``max_cost``, ``max_steps``, …).
    ``demo=True`` uses the bundled tiny model and dataset.
    """
    svc = _service(settings)
    # Building a demo request writes its assets on first use: off the event loop as well.
    return await asyncio.to_thread(lambda: svc.launch(svc.request_from(model, dataset, demo=demo, **fields)))


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
