"""Money: the machine's own run-time budget, the client watchdog, and the spot (preemption) policy."""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import (
    FakeProgramVast,
    WorkdirTransport,
    assert_nothing_billing,
    make_service,
    options,
    wait_terminal,
)
from vibeml.backends.base import LaunchChoice
from vibeml.backends.vast.progress import JobState, RunInfo
from vibeml.models import JobStatus, TrainingRequest, VastHandle
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.trainer.events import StartEvent
from vibeml.workflows.registry import render_program

fake = support.fake
vast_env = support.vast_env
demo_home = support.demo_home


def _program(tmp_path: Path) -> Any:
    job_dir = tmp_path / "job"
    request = TrainingRequest(model="org/model", dataset="org/data", max_steps=5)
    return render_program(
        request,
        "vml-budget",
        output_dir=str(job_dir / "output"),
        checkpoint_dir=str(job_dir / "ckpt"),
        events_path=str(job_dir / "events.jsonl"),
    )


def _choice(**kw: Any) -> LaunchChoice:
    values: dict[str, Any] = {
        "gpu_type": "RTX 3090",
        "hourly_rate": 0.2,
        "max_cost": 1.0,
        "estimated_hours": 1e-4,
        "required_memory_gib": 1.0,
        "disk_gb": 10.0,
    }
    values.update(kw)
    return LaunchChoice(**values)


def _wait(predicate: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(every)


# ------------------------------------------------------------------------------ the machine's own cap


@pytest.mark.slow
def test_the_machine_stops_and_destroys_itself_at_its_budget_with_no_client(vast_env: FakeVast, tmp_path: Path) -> None:
    """A trainer that would run forever, and no client polling: the instance's runner SIGTERMs it before
    max_cost / dph_total is reached and destroys its own instance through the API."""
    fake = vast_env
    backend = FakeProgramVast(
        Settings.from_env(), mode="graceful", options=options(term_grace=1.0), transport=WorkdirTransport(fake)
    )
    max_cost = 0.00025
    handle = backend.launch(_program(tmp_path), "vml-budget", tmp_path / "job", _choice(max_cost=max_cost))
    iid = int(handle.data.instance_id)
    assert 1.5 < handle.data.budget_seconds < 10, handle.data  # max_cost / dph_total × 0.95
    _wait(lambda: not fake.instance_ids(), timeout=60)  # nobody polled; it destroyed itself
    assert_nothing_billing(fake)
    assert fake.accrued_cost(iid) <= max_cost, (fake.accrued_cost(iid), max_cost)
    log = (fake.workdir(iid) / "onstart.log").read_text()
    assert '"phase":"stopping","run":1,"reason":"budget"' in log.replace(" ", "") or '"reason":"budget"' in log
    assert '"phase":"destroying"' in log
    progress = backend.status(handle)
    assert progress.status is JobStatus.STOPPED and "budget" in (progress.error or "")
    assert progress.cost_so_far <= max_cost


# ------------------------------------------------------------------------------ the client watchdog


class WarpClock:
    """Monotonic time that can be sped up: the fake then bills ``speed`` times faster than planned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._real0 = time.monotonic()
        self._fake0 = 1000.0
        self._speed = 1.0

    def __call__(self) -> float:
        with self._lock:
            return self._fake0 + (time.monotonic() - self._real0) * self._speed

    def set_speed(self, speed: float) -> None:
        with self._lock:
            real = time.monotonic()
            self._fake0 += (real - self._real0) * self._speed
            self._real0, self._speed = real, speed


@pytest.mark.needs_train
@pytest.mark.slow
def test_watchdog_destroys_when_accrued_cost_reaches_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_home: Path
) -> None:
    """The estimate was wrong (billing runs thousands of times faster than planned): the service's
    watchdog destroys the instance when the cost reaches max_cost, at most one poll interval over."""
    clock = WarpClock()
    fake = FakeVast(
        api_key=support.SECRET_KEY,
        clock=clock,
        created_delay=0.01,
        loading_delay=0.02,
        logs_delay=0.01,
        kill_grace=1.0,
        tick_interval=0.01,
        workdir_root=tmp_path / "fake-warp",
    ).start()
    try:
        monkeypatch.setenv("VIBEML_VAST_URL", fake.url)
        monkeypatch.setenv("VAST_API_KEY", support.SECRET_KEY)
        monkeypatch.setenv("VIBEML_REMOTE_INSTALL", "")
        svc, _ = make_service(
            fake,
            backend_cls=FakeProgramVast,
            backend_kwargs={"mode": "graceful"},
            clock=lambda: fake.state.wall(fake.clock()),
        )
        max_cost = 0.5
        record = svc.launch(svc.demo_request(backend="vast", max_cost=max_cost, max_steps=20))
        assert record.handle is not None
        iid, price = int(record.handle.data.instance_id), float(record.handle.data.price_per_hour)
        assert record.estimate is not None and record.estimate.expected_cost < max_cost / 5  # the plan said cheap
        _wait(lambda: svc.get_status(record.job_id).status is JobStatus.RUNNING, timeout=60)
        speed = max_cost / price * 3600 / 3.0  # the cap is reached ~3 s (real) from now
        polls: list[float] = []
        clock.set_speed(speed)
        final = wait_terminal(
            svc, record.job_id, timeout=60, every=0.2, on_poll=lambda _r: polls.append(time.monotonic())
        )
        billed = fake.accrued_cost(iid)
    finally:
        clock.set_speed(1.0)
    try:
        assert final.status is JobStatus.STOPPED and "budget cap" in (final.error or ""), final.error
        assert fake.instance(iid)["destroyed"]
        assert_nothing_billing(fake)
        interval = max(b - a for a, b in itertools.pairwise(polls)) if len(polls) > 1 else 0.5
        one_poll = price * speed * interval / 3600
        assert billed <= max_cost + one_poll * 1.2, (billed, max_cost, one_poll)
        assert billed >= max_cost * 0.5  # it ran on until the money, not the plan, said stop
        assert final.cost_so_far >= max_cost
        assert "budget_cap" in [e["kind"] for e in svc.store.events(record.job_id)]
    finally:
        fake.close()


# ------------------------------------------------------------------------------ spot


def _spot_launch(fake: FakeVast, tmp_path: Path, **opts: Any) -> tuple[FakeProgramVast, VastHandle]:
    backend = FakeProgramVast(
        Settings.from_env(), mode="graceful", options=options(**opts), transport=WorkdirTransport(fake)
    )
    handle = backend.launch(_program(tmp_path), "vml-spot", tmp_path / "job", _choice(use_spot=True))
    assert handle.data.bid is not None and fake.instance(int(handle.data.instance_id))["is_bid"]
    _wait(lambda: backend.status(handle).step >= 1, timeout=60)
    return backend, handle


def test_a_preempted_bid_is_rebid_and_its_runner_restarts(vast_env: FakeVast, tmp_path: Path) -> None:
    fake = vast_env
    backend, handle = _spot_launch(fake, tmp_path)
    iid, bid = int(handle.data.instance_id), float(handle.data.bid)
    assert fake.set_min_bid(int(handle.data.offer_id), round(bid * 1.1, 4)) == [iid]
    assert fake.status(iid) == "stopped"
    _wait(lambda: fake.process(iid).poll() is not None)  # a stopped container runs nothing any more
    p = backend.status(handle)
    assert p.status is JobStatus.PROVISIONING and "re-bid" in (p.error or "")
    assert fake.instance(iid)["dph_base"] > bid  # the new bid
    started_again = re.compile(r'"phase":"trainer-start","time":[0-9.]+,"run":2')
    _wait(
        lambda: (
            started_again.search((fake.workdir(iid) / "onstart.log").read_text())
            and backend.status(handle).status is JobStatus.RUNNING
        )
    )
    assert fake.status(iid) == "running"
    log = (fake.workdir(iid) / "onstart.log").read_text()
    assert '"phase":"interrupted"' in log and '"run":2' in log  # the runner was stopped, then ran again
    assert [r["run"] for r in RunInfo.from_records(JobState(tmp_path / "job").records()).runner][:1] == [2]
    assert JobState(tmp_path / "job").data["rebids"] == 1
    backend.stop(handle, grace_seconds=0)
    assert backend.status(handle).status is JobStatus.STOPPED
    assert_nothing_billing(fake)


def test_a_preempted_bid_that_stays_down_is_destroyed(vast_env: FakeVast, tmp_path: Path) -> None:
    fake = vast_env
    backend, handle = _spot_launch(fake, tmp_path, spot_wait=0.5)
    iid, bid = int(handle.data.instance_id), float(handle.data.bid)
    fake.set_min_bid(int(handle.data.offer_id), round(bid * 10, 4))  # far above our ceiling
    first = backend.status(handle)
    assert first.status is JobStatus.PROVISIONING and "preempted" in (first.error or "")
    time.sleep(0.6)
    final = backend.status(handle)
    assert final.status is JobStatus.STOPPED and "destroyed" in (final.error or "")
    assert_nothing_billing(fake)
    assert final.cost_so_far >= fake.accrued_cost(iid)  # conservative, and frozen from now on
    assert backend.status(handle) == final


@pytest.mark.needs_train
@pytest.mark.slow
def test_a_preempted_training_resumes_from_its_checkpoint(vast_env: FakeVast, demo_home: Path) -> None:
    """The real trainer on a bid instance: outbid mid-run, re-bid, resumed from the last checkpoint."""
    fake = vast_env
    svc, _backend = make_service(fake)
    request = svc.demo_request(backend="vast", max_cost=1.0, max_steps=24, save_steps=6, use_spot=True)
    record = svc.launch(request)
    assert record.handle is not None and record.handle.data.bid is not None, "the plan chose a bid"
    iid = int(record.handle.data.instance_id)
    _wait(lambda: (svc.get_status(record.job_id).progress or _no_ckpt).last_checkpoint, timeout=180, every=0.1)
    fake.set_min_bid(int(record.handle.data.offer_id), round(float(record.handle.data.bid) * 1.1, 4))
    _wait(lambda: fake.process(iid).poll() is not None)  # a stopped container runs nothing any more
    final = wait_terminal(svc, record.job_id, timeout=240)
    assert final.status is JobStatus.COMPLETED, final.error
    assert final.output_dir and (Path(final.output_dir) / "adapter_config.json").exists()
    info = RunInfo.from_records(JobState(Path(record.handle.job_dir)).records())
    starts = [e for e in info.all_events if isinstance(e, StartEvent)]
    assert len(starts) == 2 and starts[0].resumed_from is None and starts[1].resumed_from, starts
    assert final.progress is not None and final.progress.step == 24
    assert_nothing_billing(fake)
    assert fake.instance(iid)["destroyed"]


class _NoCkpt:
    last_checkpoint = None


_no_ckpt = _NoCkpt()
