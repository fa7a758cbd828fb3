"""Resume, end to end on CPU with the tiny demo model: a run is killed mid-training, its newest checkpoint
is torn, and `vibeml resume` (and the Python API) continue from the one before it, the loss carrying on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.test_e2e_local import cli, cli_json, wait_for
from vibeml.trainer.events import CheckpointEvent, CheckpointSkippedEvent, StartEvent, StepEvent, read_events

pytestmark = [pytest.mark.needs_train, pytest.mark.slow, pytest.mark.timeout(900)]

SAVE_EVERY = 4


@pytest.fixture
def demo_home(vibeml_env: Path, demo_assets_dir: Path) -> Path:
    import shutil

    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    return vibeml_env


def _events(home: Path, job_id: str) -> list[Any]:
    return list(read_events(home / "jobs" / job_id / "events.jsonl"))


def _kill_after_two_checkpoints(home: Path, job_id: str) -> dict[int, float]:
    """Wait for the second checkpoint and a step beyond it, SIGKILL the trainer's group; the losses by step."""

    def ready() -> bool:
        evs = _events(home, job_id)
        saved = [e.step for e in evs if isinstance(e, CheckpointEvent)]
        steps = [e.step for e in evs if isinstance(e, StepEvent)]
        return len(saved) >= 2 and bool(steps) and max(steps) > saved[1]

    wait_for(ready, timeout=300, every=0.2)
    handle = json.loads((home / "jobs" / job_id / "handle.json").read_text())
    os.killpg(int(handle["data"]["pgid"]), signal.SIGKILL)
    return {e.step: e.loss for e in _events(home, job_id) if isinstance(e, StepEvent)}


def _tear_newest(home: Path, job_id: str) -> tuple[Path, Path]:
    """Truncate the newest checkpoint's trainer_state.json; (torn one, the one before)."""
    ckpts = sorted((home / "jobs" / job_id / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
    assert len(ckpts) >= 2, ckpts
    state = ckpts[-1] / "trainer_state.json"
    text = state.read_text()
    state.write_text(text[: len(text) // 2])
    return ckpts[-1], ckpts[-2]


def _check_continued(home: Path, new_id: str, torn: Path, previous: Path, before: dict[int, float]) -> None:
    evs = _events(home, new_id)
    [start] = [e for e in evs if isinstance(e, StartEvent)]
    assert start.resumed_from == str(previous), start
    steps = [e for e in evs if isinstance(e, StepEvent)]
    first = steps[0]
    resumed_at = int(previous.name.split("-")[1])
    assert first.step == resumed_at + 1, [e.step for e in steps]  # not step 1 again
    # The loss carries on from where that checkpoint left it (same weights, optimizer and data order):
    # near the killed run's loss at that step, far below the run's first loss.
    assert first.loss is not None and before[1] is not None
    assert first.loss < 0.8 * before[1], (first.loss, before)
    assert abs(first.loss - before[first.step]) <= 0.1 * before[first.step] + 0.05, (first.loss, before)
    assert not any(isinstance(e, CheckpointSkippedEvent) for e in evs)  # the client chose; nothing torn here
    assert torn.exists()  # the earlier job's files are left as they were


def test_cli_resume_skips_a_torn_checkpoint_and_continues(demo_home: Path) -> None:
    job = cli_json("launch", "--demo", "--max-steps", "60", "--save-steps", str(SAVE_EVERY))
    before = _kill_after_two_checkpoints(demo_home, job["job_id"])
    killed = wait_for(lambda: (s := cli_json("status", job["job_id"]))["status"] == "failed" and s, timeout=60)
    assert killed["status"] == "failed"
    torn, previous = _tear_newest(demo_home, job["job_id"])

    res = cli("resume", job["job_id"][:8], "--max-steps", str(int(previous.name[11:]) + 3), "--follow", "--json")
    assert f"checkpoint {torn.name} is incomplete (trainer_state.json is not readable JSON" in res.stderr, res.stderr
    [new] = [j for j in cli_json("jobs") if j["job_id"] != job["job_id"]]
    assert new["status"] == "completed", new.get("error")
    assert new["request"]["resume_from"] == job["job_id"]
    assert new["job_id"] in res.stdout  # --follow --json reported the new job
    _check_continued(demo_home, new["job_id"], torn, previous, before)


def test_python_api_resume_continues_from_the_last_complete_checkpoint(demo_home: Path) -> None:
    from vibeml import get_job_status, launch_training, resume_training

    job = asyncio.run(launch_training(demo=True, max_steps=60, save_steps=SAVE_EVERY))
    before = _kill_after_two_checkpoints(demo_home, job.job_id)
    wait_for(lambda: asyncio.run(get_job_status(job.job_id)).status.value == "failed", timeout=60)
    torn, previous = _tear_newest(demo_home, job.job_id)

    new = asyncio.run(resume_training(job.job_id, max_steps=int(previous.name[11:]) + 3))
    assert new.request.resume_from == job.job_id
    assert any(torn.name in n and "incomplete" in n for n in new.notes), new.notes
    done = wait_for(
        lambda: (r := asyncio.run(get_job_status(new.job_id))).status.is_terminal and r, timeout=300, every=0.5
    )
    assert done.status.value == "completed", done.error
    assert done.progress is not None and done.progress.resumed_from == str(previous)
    _check_continued(demo_home, new.job_id, torn, previous, before)
