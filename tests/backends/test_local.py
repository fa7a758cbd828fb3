from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from vibeml.backends.local import LocalBackend
from vibeml.exceptions import ConfigurationError
from vibeml.models import JobStatus, LocalHandle, LocalHandleData, TrainerEnd, TrainingRequest
from vibeml.processes import process_alive, start_time
from vibeml.settings import Settings
from vibeml.workflows.registry import render_program

HERE = Path(__file__).parent


def _launch(tmp_path: Path, mode: str) -> tuple[LocalBackend, LocalHandle]:
    settings = Settings.from_env()
    backend = LocalBackend(settings)
    job_dir = tmp_path / "job"
    request = TrainingRequest(model="m/x", dataset="d/x", max_steps=5)
    program = render_program(
        request,
        "vml-test",
        output_dir=str(job_dir / "output"),
        checkpoint_dir=str(job_dir / "ckpt"),
        events_path=str(job_dir / "events.jsonl"),
        env={"VIBEML_TEST_MODE": mode, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    program = program.model_copy(update={"module": "fake_program"})
    return backend, backend.launch(program, "vml-test", job_dir)


def _wait(backend: LocalBackend, handle: LocalHandle, want: set[JobStatus], timeout: float = 30) -> JobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = backend.status(handle).status
        if st in want:
            return st
        time.sleep(0.05)
    raise AssertionError(f"still {backend.status(handle).status}")


def test_complete_run(tmp_path: Path) -> None:
    backend, handle = _launch(tmp_path, "complete")
    assert (Path(handle.job_dir) / "handle.json").exists()
    assert _wait(backend, handle, {JobStatus.COMPLETED}) is JobStatus.COMPLETED
    p = backend.status(handle)
    assert p.step == 5 and p.first_loss == 4.0
    assert "step 5" in list(backend.logs(handle, tail=10))
    assert backend.fetch_artifacts(handle).name == "output"
    dest = backend.fetch_artifacts(handle, tmp_path / "copy")
    assert (dest / "adapter_model.safetensors").exists()
    backend.stop(handle)  # stopping a finished job is fine


def test_detached_process_group(tmp_path: Path) -> None:
    backend, handle = _launch(tmp_path, "graceful")
    pid = handle.data.pid
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # its own session: outlives the launcher
    _wait(backend, handle, {JobStatus.RUNNING})
    backend.stop(handle, grace_seconds=10)
    assert backend.status(handle).status is JobStatus.STOPPED
    assert backend.status(handle).last_checkpoint == "ckpt-1"
    backend.stop(handle)  # idempotent


def test_stubborn_process_is_killed_after_grace(tmp_path: Path) -> None:
    backend, handle = _launch(tmp_path, "stubborn")
    _wait(backend, handle, {JobStatus.RUNNING})
    t0 = time.monotonic()
    backend.stop(handle, grace_seconds=0.5)
    assert time.monotonic() - t0 < 10
    assert not process_alive(handle.data.pid, handle.data.proc_start)
    assert backend.status(handle).status is JobStatus.FAILED  # no final event; the service maps to stopped


def test_crash_without_event_is_failed_with_log_line(tmp_path: Path) -> None:
    backend, handle = _launch(tmp_path, "crash")
    _wait(backend, handle, {JobStatus.FAILED})
    err = backend.status(handle).error or ""
    assert "without a final event" in err and "boom" in err


def test_error_event_is_failed(tmp_path: Path) -> None:
    backend, handle = _launch(tmp_path, "error")
    _wait(backend, handle, {JobStatus.FAILED})
    assert backend.status(handle).error == "dataset has no rows"


def test_follow_logs_ends_with_the_job(tmp_path: Path) -> None:
    backend, handle = _launch(tmp_path, "complete")
    lines = list(backend.logs(handle, tail=0, follow=True))
    assert any("step 5" in line for line in lines) or "step 5" in list(backend.logs(handle))


def test_pid_reuse_is_not_mistaken_for_the_job() -> None:
    me = os.getpid()
    assert process_alive(me)
    started = start_time(me)
    assert started is not None and process_alive(me, started)
    assert not process_alive(me, started + 12345)


def test_stop_of_vanished_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose processes were killed from outside is FAILED with a reason; stop then is a no-op."""
    backend, handle = _launch(tmp_path, "graceful")
    _wait(backend, handle, {JobStatus.RUNNING})
    os.killpg(handle.data.pgid, signal.SIGKILL)
    _wait(backend, handle, {JobStatus.FAILED})
    before = backend.status(handle)
    assert before.trainer_end is TrainerEnd.NO_FINAL_EVENT and before.error and "without a final event" in before.error
    sent: list[tuple[int, int]] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if sig == 0:  # only probes whether a process exists
            real_kill(pid, sig)
        else:
            sent.append((pid, sig))

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: sent.append((pgid, sig)))
    events = Path(handle.data.events_path).read_text(encoding="utf-8")
    assert backend.stop(handle, grace_seconds=0.5) is None  # nothing left to stop: no error, no wait
    assert sent == []  # the group id may belong to someone else by now: nothing is signalled
    after = backend.status(handle)
    assert after.status is JobStatus.FAILED and after.error == before.error  # not turned into "stopped"
    assert Path(handle.data.events_path).read_text(encoding="utf-8") == events


@pytest.mark.parametrize("bad", ["", "relative/x"])
def test_missing_log_reads_empty(tmp_path: Path, bad: str) -> None:
    log = str(tmp_path / bad / "none.log")
    handle = LocalHandle(
        job_id="j",
        backend_job_id="4194305",
        job_dir=str(tmp_path),
        data=LocalHandleData(
            pid=4194305,  # above Linux's pid_max: no such process
            pgid=4194305,
            events_path=str(tmp_path / "events.jsonl"),
            log_path=log,
            output_dir=str(tmp_path / "output"),
            argv=("python", "-m", "vibeml.trainer"),
        ),
    )
    assert list(LocalBackend(Settings.from_env()).logs(handle)) == []


def _python_that_exits(tmp_path: Path, code: int) -> str:
    script = tmp_path / f"python-{code}"
    script.write_text(f"#!/bin/sh\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(("code", "refused"), [(3, True), (1, True), (0, False)])
def test_a_cuda_only_workflow_is_refused_before_start_without_a_gpu(tmp_path: Path, code: int, refused: bool) -> None:
    # The probe runs in the trainer's Python: 3 = torch sees no CUDA device, 1 = no torch at all, 0 = a GPU.
    backend = LocalBackend(Settings(python=_python_that_exits(tmp_path, code)))
    request = TrainingRequest(model="m/x", dataset="d/x", max_steps=5, workflow="unsloth")
    if refused:
        with pytest.raises(ConfigurationError, match="only on an NVIDIA GPU") as info:
            backend.check(request)
        assert "--backend vast" in info.value.recovery_suggestion
    else:
        backend.check(request)
    backend.check(request.model_copy(update={"workflow": "trl-lora"}))  # a CPU workflow asks nothing


def test_the_service_refuses_unsloth_on_this_cpu_machine_and_starts_nothing(vibeml_env: Path) -> None:
    from vibeml.client import VibeML

    service = VibeML()
    with pytest.raises(ConfigurationError, match="NVIDIA GPU"):
        service.prepare_launch(TrainingRequest(model="m/x", dataset="d/x", max_steps=5, workflow="unsloth"))
    assert service.store.list_jobs(limit=5) == []
