"""The Vast backend's retry loops, on :func:`vibeml.exceptions.retry_with_backoff`: attempts and waits.

Each test injects ``sleep`` (nothing waits for real) and pins the schedule the hand-written loop had:
the backend's destroy rounds, the SSH transport's tries while sshd comes up, and the on-instance
runner's own destroy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import vibeml.vast
from vibeml.backends.vast import transport as vast_transport
from vibeml.backends.vast.options import VastOptions
from vibeml.backends.vast.remote import destroy_own_instance
from vibeml.backends.vast.status import VastJobMonitor
from vibeml.backends.vast.transport import SSHTransport
from vibeml.exceptions import BackendError
from vibeml.vast import VastAPIError, VastNotFoundError


class FlakyVast:
    """Stands in for :class:`~vibeml.vast.VastAI`: ``destroy_instance`` raises ``errors`` in turn, then works."""

    def __init__(self, errors: list[Exception], **_kw: Any) -> None:
        self.errors = list(errors)
        self.destroys = 0
        self.stops: list[int] = []

    def __enter__(self) -> FlakyVast:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def destroy_instance(self, iid: int) -> dict[str, Any]:
        self.destroys += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"success": True}

    def stop_instance(self, iid: int) -> dict[str, Any]:
        self.stops.append(iid)
        return {"success": True}


def _api_error(n: int = 0) -> VastAPIError:
    return VastAPIError(f"busy {n}", status=503, retryable=True)


# ------------------------------------------------------------------------------ backend destroy


class _Monitor(VastJobMonitor):
    def __init__(self, attempts: int, sleeps: list[float]) -> None:
        self.options = VastOptions(destroy_attempts=attempts)
        self._sleep = sleeps.append


def test_backend_destroy_waits_0_2_doubling_to_5_s_and_gives_up_after_its_rounds() -> None:
    sleeps: list[float] = []
    vast = FlakyVast([_api_error(i) for i in range(20)])
    assert _Monitor(8, sleeps)._destroy(vast, 5) is False  # type: ignore[arg-type]
    assert vast.destroys == 8
    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])  # none after the last round


def test_backend_destroy_retries_any_api_error_until_it_works() -> None:
    sleeps: list[float] = []
    vast = FlakyVast([_api_error(), VastAPIError("bad request", status=400)])
    assert _Monitor(3, sleeps)._destroy(vast, 5) is True  # type: ignore[arg-type]
    assert vast.destroys == 3 and sleeps == pytest.approx([0.2, 0.4])


def test_backend_destroy_of_a_vanished_instance_is_done_at_once() -> None:
    sleeps: list[float] = []
    vast = FlakyVast([VastNotFoundError("gone", status=404)])
    assert _Monitor(3, sleeps)._destroy(vast, 5) is True  # type: ignore[arg-type]
    assert vast.destroys == 1 and sleeps == []


def test_backend_destroy_does_not_retry_what_is_not_an_api_error() -> None:
    vast = FlakyVast([RuntimeError("bug")])
    with pytest.raises(RuntimeError):
        _Monitor(3, [])._destroy(vast, 5)  # type: ignore[arg-type]
    assert vast.destroys == 1


# ------------------------------------------------------------------------------ ssh transport


class Script:
    """Stands in for subprocess.run: plays exit codes (or a timeout) in turn."""

    def __init__(self, *steps: int | str) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls += 1
        step = self.steps.pop(0)
        if step == "timeout":
            raise subprocess.TimeoutExpired(argv, kw["timeout"])
        assert isinstance(step, int)
        return subprocess.CompletedProcess(argv, step, "", "" if step == 0 else f"ssh: failure {self.calls}")


def _transport(tmp_path: Path, run: Script, sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> SSHTransport:
    monkeypatch.setattr(vast_transport.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    return SSHTransport(tmp_path / "ssh", attempts=4, retry_delay=10.0, timeout=5.0, run=run, sleep=sleeps.append)


def test_ssh_retries_while_sshd_is_not_up_with_a_fixed_delay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    run = Script(255, "timeout", 0)
    _transport(tmp_path, run, sleeps, monkeypatch)._exec(["ssh", "host", "true"], "probe")
    assert run.calls == 3 and sleeps == [10.0, 10.0]


def test_ssh_gives_up_after_its_attempts_with_the_last_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    run = Script(255, 255, 255, 255)
    with pytest.raises(BackendError, match="probe failed: ssh: failure 4"):
        _transport(tmp_path, run, sleeps, monkeypatch)._exec(["ssh", "host", "true"], "probe")
    assert run.calls == 4 and sleeps == [10.0, 10.0, 10.0]


def test_ssh_command_failures_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    run = Script(1)
    with pytest.raises(BackendError, match="copy failed: ssh: failure 1") as info:
        _transport(tmp_path, run, sleeps, monkeypatch)._exec(["scp", "a", "b"], "copy")
    assert run.calls == 1 and sleeps == [] and info.value.__cause__ is None


def test_ssh_timeouts_spent_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Script("timeout", "timeout", "timeout", "timeout")
    with pytest.raises(BackendError, match="timed out after 5 s"):
        _transport(tmp_path, run, [], monkeypatch)._exec(["ssh", "host", "true"], "probe")
    assert run.calls == 4


# ------------------------------------------------------------------------------ runner's own destroy

ENV = {"CONTAINER_ID": "42", "CONTAINER_API_KEY": "instance-key", "VIBEML_VAST_API": "https://vast.test"}


def _runner_destroy(
    monkeypatch: pytest.MonkeyPatch, errors: list[Exception], cancel_after: int | None = None
) -> tuple[bool, FlakyVast, list[float], list[tuple[str, dict[str, Any]]]]:
    vast = FlakyVast(errors)
    monkeypatch.setattr(vibeml.vast, "VastAI", lambda **kw: vast)
    said: list[tuple[str, dict[str, Any]]] = []
    sleeps: list[float] = []

    def cancelled() -> bool:
        return cancel_after is not None and vast.destroys >= cancel_after

    ok = destroy_own_instance(ENV, lambda phase, **f: said.append((phase, f)), sleeps.append, cancelled)
    return ok, vast, sleeps, said


def test_runner_destroy_waits_1_s_doubling_to_60_s_then_stops_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, vast, sleeps, said = _runner_destroy(monkeypatch, [_api_error(i) for i in range(8)])
    assert ok is False and vast.destroys == 8 and vast.stops == [42]  # storage-only billing beats GPU billing
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]  # none after the last round
    assert [f["attempt"] for p, f in said if p == "destroy-retry"] == list(range(1, 9))
    assert said[-1][0] == "destroy-failed"


def test_runner_destroy_succeeds_after_transient_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, vast, sleeps, said = _runner_destroy(monkeypatch, [_api_error(), ConnectionError("reset")])
    assert ok is True and vast.destroys == 3 and vast.stops == []
    assert sleeps == [1.0, 2.0]
    assert said == [
        ("destroy-retry", {"attempt": 1, "error": "VastAPIError"}),
        ("destroy-retry", {"attempt": 2, "error": "ConnectionError"}),
    ]


def test_runner_destroy_of_a_vanished_instance_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, vast, sleeps, said = _runner_destroy(monkeypatch, [VastNotFoundError("gone", status=404)])
    assert ok is True and vast.destroys == 1 and sleeps == [] and said == []


def test_runner_destroy_stops_retrying_when_the_runner_is_terminated(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, vast, sleeps, said = _runner_destroy(monkeypatch, [_api_error(i) for i in range(8)], cancel_after=2)
    assert ok is False and vast.destroys == 2 and vast.stops == []  # the platform is taking the machine down
    assert sleeps == [1.0]  # the cancel is seen before the second wait
    assert [p for p, _ in said] == ["destroy-retry", "destroy-retry"]
