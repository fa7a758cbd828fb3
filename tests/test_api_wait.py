"""``vibeml.api.launch_training(wait=True)``: follows the job to its end with progress, and cancelling the
awaiting task stops the job. The local backend runs the stand-in trainer (tests/backends/fake_program.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.standin_local import StandInLocal, standin_service
from vibeml import api
from vibeml.exceptions import ValidationError
from vibeml.models import JobRecord, JobStatus

pytestmark = pytest.mark.needs_train  # the demo assets (a tiny model built with transformers)


@pytest.fixture
def inputs(vibeml_env: Path, demo_assets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The API's service runs the stand-in trainer locally; the demo's model and data as inputs."""
    monkeypatch.setattr(api, "VibeML", standin_service)
    model = next(demo_assets_dir.rglob("config.json")).parent
    return {"model": str(model), "dataset": str(next(demo_assets_dir.rglob("*.jsonl")))}


def _launch(inputs: dict[str, str], **kw: Any) -> Any:
    return api.launch_training(inputs["model"], inputs["dataset"], max_steps=5, **kw)


def test_wait_follows_the_job_to_its_end_reporting_each_new_step(inputs: dict[str, str]) -> None:
    StandInLocal.mode = "complete"
    seen: list[JobRecord] = []

    async def on_progress(job: JobRecord) -> None:
        seen.append(job)

    job = asyncio.run(_launch(inputs, wait=True, on_progress=on_progress))
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.progress is not None and job.progress.step == 5
    assert Path(job.output_dir or job.progress.output_dir or "", "adapter_model.safetensors").exists()
    steps = [j.progress.step if j.progress else 0 for j in seen]
    assert steps == sorted(set(steps)) and steps[-1] == 5, steps  # each new step once, in order
    assert seen[0].status is not JobStatus.COMPLETED  # the first call comes at the start

    plain: list[JobRecord] = []  # a plain function works too
    done = asyncio.run(_launch(inputs, wait=True, on_progress=plain.append))
    assert done.status is JobStatus.COMPLETED and plain[-1].progress and plain[-1].progress.step == 5


def test_cancelling_the_wait_stops_the_job(inputs: dict[str, str]) -> None:
    StandInLocal.mode = "graceful"  # step 1, then runs until stopped (at most 60 s)
    running = asyncio.Event()

    def on_progress(job: JobRecord) -> None:
        if job.progress is not None and job.progress.step >= 1:
            running.set()

    async def go() -> str:
        follow = asyncio.create_task(_launch(inputs, wait=True, on_progress=on_progress))
        await asyncio.wait_for(running.wait(), 60)
        follow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follow
        [job] = await api.list_jobs()
        return job.job_id

    job_id = asyncio.run(go())
    status = asyncio.run(api.get_job_status(job_id))
    assert status.status is JobStatus.STOPPED, status  # stopped by the cancellation, not after 60 s
    assert status.progress is not None and status.progress.trainer_end is not None
    assert status.progress.trainer_end.value == "stopped"  # the trainer's own stop (it checkpointed)


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"wait": "yes"}, "wait must be True or False"),
        ({"wait": True, "on_progress": 3}, "on_progress must be a function"),
        ({"on_progress": print}, "needs wait=True"),
    ],
)
def test_bad_wait_arguments_are_typed_errors(inputs: dict[str, str], kw: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        asyncio.run(_launch(inputs, **kw))
    assert says in info.value.message and info.value.recovery_suggestion
    assert asyncio.run(api.list_jobs()) == []  # nothing was launched
