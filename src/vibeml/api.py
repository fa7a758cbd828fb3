"""The async Python API (the seed's): one awaitable function per service call.

    from vibeml import launch_training, get_job_status
    job = await launch_training(model="Qwen/Qwen2.5-0.5B", dataset="./data.jsonl", max_steps=200)
"""

from __future__ import annotations

from typing import Any

from vibeml.client import VibeML, build_request
from vibeml.models import JobRecord
from vibeml.settings import Settings

__all__ = ["get_job_logs", "get_job_status", "launch_training", "list_jobs", "stop_job"]


def _service(settings: Settings | None) -> VibeML:
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
    if demo:
        request = svc.demo_request(**fields)
    else:
        request = build_request(model=model, dataset=dataset, **fields)
    return await svc.launch(request)


async def get_job_status(job_id: str, *, settings: Settings | None = None) -> JobRecord:
    """A job with its current status, step, loss, ETA and cost so far."""
    return await _service(settings).get_status(job_id)


async def list_jobs(limit: int = 50, *, settings: Settings | None = None) -> list[JobRecord]:
    """Jobs, newest first."""
    return await _service(settings).list_jobs(limit=limit)


async def get_job_logs(job_id: str, tail: int = 200, *, settings: Settings | None = None) -> list[str]:
    """The last ``tail`` lines of a job's log."""
    return await _service(settings).get_logs(job_id, tail=tail)


async def stop_job(
    job_id: str, *, grace_seconds: float | None = None, settings: Settings | None = None
) -> JobRecord:
    """Stop a job (checkpointing first); stopping a finished job changes nothing."""
    return await _service(settings).stop(job_id, grace_seconds=grace_seconds)
