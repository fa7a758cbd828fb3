"""Follow a launched job to its end: the one loop behind MCP's ``launch_training(wait=true)`` and the Python
API's ``launch_training(wait=True)``.

It polls the service (a local run's status is a file read, a cloud's an API call), hands each new step to a
progress callback, and returns the job once it ends (or when following has gone on for ``limit_seconds``:
the job then keeps running). Cancelling the awaiting task stops the job through the service (its checkpoint
and stop), shielded so the stop completes, then lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from vibeml.models import JobRecord

if TYPE_CHECKING:
    from vibeml.client import VibeML

__all__ = ["FOLLOW_LIMIT_SECONDS", "ProgressCallback", "follow_job", "poll_seconds", "progress_message"]

log = logging.getLogger(__name__)

#: How often a followed job is polled: a local run's status is a file read; a cloud's is an API call.
_POLL_SECONDS = {"local": 1.0}
_POLL_SECONDS_REMOTE = 5.0
#: The longest a job is followed; past it the follower returns and the job keeps running.
FOLLOW_LIMIT_SECONDS = 24 * 3600.0

#: Called with the job each time its step grows (and once at the start); may be a coroutine function.
ProgressCallback = Callable[[JobRecord], Awaitable[None] | None]


def poll_seconds(backend: str) -> float:
    return _POLL_SECONDS.get(backend, _POLL_SECONDS_REMOTE)


def progress_message(record: JobRecord) -> str:
    """``step 7/20 loss 2.9086 cost $0.00 (running)``: one line of progress for a person."""
    p = record.progress
    step = p.step if p else 0
    text = f"step {step}/{p.max_steps if p and p.max_steps else '?'}"
    if p and p.loss is not None:
        text += f" loss {p.loss:.4f}"
    if p and p.oom_retries:
        text += f" after {len(p.oom_retries)} out-of-memory retr{'y' if len(p.oom_retries) == 1 else 'ies'}"
    return text + f" cost ${record.cost_so_far:.2f} ({record.status.value})"


async def follow_job(
    service: VibeML,
    record: JobRecord,
    on_progress: ProgressCallback | None = None,
    *,
    interval: float | None = None,
    limit_seconds: float = FOLLOW_LIMIT_SECONDS,
) -> JobRecord:
    """Poll ``record``'s job until it ends; ``on_progress`` gets the job at the start and on each new step
    (steps strictly increase, as MCP progress must). Returns the last record seen.

    Cancelling the caller stops the job (``service.stop``, shielded), then re-raises the cancellation.
    """
    import anyio

    job_id = record.job_id
    every = poll_seconds(record.backend) if interval is None else interval
    deadline = anyio.current_time() + limit_seconds
    last_step = -1
    try:
        while True:
            step = record.progress.step if record.progress else 0
            if step > last_step and on_progress is not None:
                last_step = step
                reported = on_progress(record)
                if inspect.isawaitable(reported):
                    await reported
            if record.status.is_terminal or anyio.current_time() >= deadline:
                return record
            await anyio.sleep(every)
            record = await asyncio.to_thread(service.get_status, job_id)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            log.warning("following job %s was cancelled: stopping it", job_id)
            await anyio.to_thread.run_sync(service.stop, job_id)
        raise
