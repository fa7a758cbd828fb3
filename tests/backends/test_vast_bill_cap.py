"""Money: the on-instance runner reads its own bill and stops before the cap, whatever the quote said.

The unit tests drive :class:`~vibeml.backends.vast.remote.VastSupervisor`'s arithmetic with a fake clock and a fake
bill reader; the slow test is a whole launch on the fake Vast.ai whose instance bills 5× its offer's quote,
with no client polling after the launch.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import (
    FakeProgramVast,
    WorkdirTransport,
    assert_nothing_billing,
    options,
)
from vibeml.backends.base import LaunchChoice
from vibeml.backends.vast.progress import JobState, RunInfo, billed_cost
from vibeml.backends.vast.remote import VastSupervisor
from vibeml.models import JobStatus, TrainingRequest, VastHandleData
from vibeml.remote.payload import RemoteBudget, RemoteJob, decode_payload
from vibeml.remote.supervisor import parse_runner_lines
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.trainer.events import ECHO_PREFIX, StoppedEvent, parse_event
from vibeml.workflows.registry import render_program

fake = support.fake
vast_env = support.vast_env

INSTANCE_KEY = "ik_5b4a39281706f5e4d3c2b1a09f8e7d6c"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Bill:
    """A fake bill reader: returns ``record`` or raises ``error``."""

    def __init__(self, record: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.record, self.error, self.calls = record, error, 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        assert self.record is not None
        return self.record


WALL0 = 1_800_000_000.0


def _runner(tmp_path: Path, bill: Bill, clock: Clock, **budget: Any) -> tuple[VastSupervisor, io.StringIO]:
    fields = {"max_runtime_seconds": 3600, "stop_grace_seconds": 120, "reserve_seconds": 30, "max_cost_usd": 1.0}
    job = RemoteJob(provider="vast", module="fake_program", budget=RemoteBudget(**{**fields, **budget}))
    env = {"VIBEML_REMOTE_DIR": str(tmp_path / "job"), "CONTAINER_API_KEY": INSTANCE_KEY}
    out = io.StringIO()
    runner = VastSupervisor(
        job, env, clock=clock, sleep=clock.sleep, out=out, read_bill=bill, wall=lambda: WALL0 + clock.t
    )
    return runner, out


def _bills(out: io.StringIO) -> list[dict[str, Any]]:
    return [r for r in parse_runner_lines(out.getvalue().splitlines()) if r["phase"] == "bill"]


def test_the_money_left_at_the_observed_rate_becomes_the_time_left(tmp_path: Path) -> None:
    clock = Clock()
    # created 100 s ago, billing $5/h (whatever the offer quoted): $0.1389 so far, $0.8611 left = 620 s
    bill = Bill({"dph_total": 5.0, "start_date": WALL0 - 100.0})
    runner, out = _runner(tmp_path, bill, clock)
    assert runner.remaining() == pytest.approx(3600 - 30)  # not read yet: the time budget alone
    assert runner.poll_bill()
    assert runner.remaining() == pytest.approx(620 - 30)  # the destroy starts with the reserve in hand
    clock.t = 100.0
    assert runner.remaining() == pytest.approx(520 - 30)  # counted down at the observed rate
    record = _bills(out)[-1]
    assert record["ok"] and record["rate"] == 5.0 and record["using"] == "bill"
    assert record["accrued"] == pytest.approx(100 * 5 / 3600, abs=1e-6) and record["remaining"] == 620.0
    # a faster bill moves the deadline closer: $0.25 more at $9/h
    bill.record = {"dph_total": 9.0, "start_date": WALL0 - 100.0}
    assert runner.poll_bill()
    accrued = 200 * 9 / 3600  # the whole life at the new rate errs high
    assert runner.remaining() == pytest.approx((1.0 - accrued) / 9 * 3600 - 30)
    # a cheap time budget still wins when it is the sooner end
    cheap, _ = _runner(tmp_path, Bill({"dph_total": 0.5, "start_date": WALL0}), Clock())
    assert cheap.poll_bill() and cheap.remaining() == pytest.approx(3600 - 30)


def test_api_errors_fall_back_to_the_time_clock_and_never_log_the_key(tmp_path: Path) -> None:
    clock = Clock()
    bill = Bill(error=ConnectionError(f"https://console.vast.ai/?api_key={INSTANCE_KEY} unreachable"))
    runner, out = _runner(tmp_path, bill, clock)
    assert not runner.poll_bill()
    clock.t = 50.0
    assert runner.remaining() == pytest.approx(3600 - 50 - 30)  # the time budget, as if no bill existed
    [record] = _bills(out)
    assert (record["ok"], record["error"], record["using"]) == (False, "ConnectionError", "time")
    # a good reading, then errors again: the last reading keeps counting down at its rate
    bill.error, bill.record = None, {"dph_total": 10.0, "start_date": WALL0}  # 50 s ago
    assert runner.poll_bill()
    deadline = runner.remaining()
    assert deadline == pytest.approx((1.0 - 50 * 10 / 3600) / 10 * 3600 - 30)
    bill.error = TimeoutError("slow")
    clock.t = 80.0
    assert not runner.poll_bill()
    assert runner.remaining() == pytest.approx(deadline - 30)
    assert _bills(out)[-1]["using"] == "time+last-bill"
    for record in ({"dph_total": 0, "start_date": WALL0}, {"dph_total": "abc"}, {"start_date": WALL0}):
        bill.error, bill.record = None, record  # a record without a usable rate is a failed reading too
        assert not runner.poll_bill()
    assert runner.remaining() == pytest.approx(deadline - 30)
    assert INSTANCE_KEY not in out.getvalue()


def test_the_bill_never_goes_backwards(tmp_path: Path) -> None:
    """An instance clock behind Vast's, or a start_date reset by a restart, cannot shrink the bill: at
    least the last reading plus the run time since, at the rate now."""
    clock = Clock()
    bill = Bill({"dph_total": 3.6, "start_date": WALL0 - 1000.0})  # $1/1000 s
    runner, out = _runner(tmp_path, bill, clock, max_cost_usd=2.0)
    assert runner.poll_bill() and _bills(out)[-1]["accrued"] == pytest.approx(1.0)
    clock.t = 100.0
    bill.record = {"dph_total": 3.6, "start_date": WALL0 + 90.0}  # "started" 10 s ago
    assert runner.poll_bill() and _bills(out)[-1]["accrued"] == pytest.approx(1.1)
    assert runner.remaining() == pytest.approx(900 - 30)


def test_knobs_are_bounded_and_no_cap_means_no_reading(tmp_path: Path) -> None:
    clock = Clock()
    for value in (0, 0.2, 100000, float("nan")):  # more often than 1 s the API rate-limits; 15 min is the most
        with pytest.raises(PydanticValidationError):
            RemoteBudget(bill_poll_seconds=value)
    assert _runner(tmp_path, Bill(), clock, bill_poll_seconds=5)[0].bill_every == 5.0
    assert _runner(tmp_path, Bill(), clock)[0].bill_every == 60.0
    small, _ = _runner(tmp_path, Bill(), clock, max_runtime_seconds=40)
    assert small.reserve == 10.0  # at most a quarter of the budget
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(PydanticValidationError):
            RemoteBudget(max_cost_usd=bad)
    bill = Bill({"dph_total": 1.0, "start_date": WALL0})
    runner, out = _runner(tmp_path, bill, clock, max_cost_usd=None)
    assert not runner.poll_bill() and bill.calls == 0 and _bills(out) == []


def test_the_destroy_starts_with_the_reserve_in_hand_whatever_the_budget(tmp_path: Path) -> None:
    """A fixed reserve for the destroy's latency (it used to be 4 % of the budget: 0.2 s of a 5 s budget,
    4 s of 100 s — too little for an API call on a busy host, and the bill ran past the cap)."""
    reserve: dict[str, Any]
    for reserve, destroy_at in (({}, 75.0), ({"reserve_seconds": 10}, 90.0)):
        clock = Clock()
        runner, _ = _runner(
            tmp_path,
            Bill(),
            clock,
            max_runtime_seconds=100,
            stop_grace_seconds=5,
            linger_seconds=1000,
            max_cost_usd=None,
            **reserve,
        )
        runner._linger()  # nobody collects: it lingers until the destroy must start
        assert runner.used() == pytest.approx(destroy_at, abs=0.25)


def test_the_clients_cost_is_never_below_the_bill_the_instance_read(tmp_path: Path) -> None:
    lines = [
        '@@vibeml-runner {"phase":"start","run":1}',
        '@@vibeml-runner {"phase":"bill","ok":true,"accrued":0.42,"rate":5.0}',
        '@@vibeml-runner {"phase":"bill","ok":false,"error":"TimeoutError","using":"time+last-bill"}',
        '@@vibeml-runner {"phase":"bill","ok":true,"accrued":0.61,"rate":5.0}',
    ]
    info = RunInfo.from_records(lines)
    assert info.bill_accrued == 0.61 and RunInfo.from_records(lines[:1]).bill_accrued == 0.0
    data = VastHandleData(
        label="vibeml-vml-01d0b001",
        launcher_pid=1,
        output_dir=str(tmp_path / "out"),
        checkpoint_dir=str(tmp_path / "ckpt"),
        disk_gb=8,
        created_at=1000.0,
        storage_rate=0.0,
        gpu_rate=1.0,
    )
    state = JobState(tmp_path)
    assert billed_cost(data, state, 1360.0) == pytest.approx(0.1)  # the quote: $1/h for 6 minutes
    state.data["runner_bill"] = info.bill_accrued
    assert billed_cost(data, state, 1360.0) == pytest.approx(0.61)  # the bill said more


# ------------------------------------------------------------------------------ a whole launch


def _program(tmp_path: Path) -> Any:
    job_dir = tmp_path / "job"
    request = TrainingRequest(model="org/model", dataset="org/data", max_steps=5)
    return render_program(
        request,
        "vml-billcap",
        output_dir=str(job_dir / "output"),
        checkpoint_dir=str(job_dir / "ckpt"),
        events_path=str(job_dir / "events.jsonl"),
    )


@pytest.mark.slow
def test_a_machine_billing_faster_than_its_quote_stops_under_the_cap_with_no_client(
    vast_env: FakeVast, tmp_path: Path
) -> None:
    """The instance bills 5× its offer's quote and nobody polls: the time budget alone (max_cost / quote)
    would bill ~4.75× the cap. The runner reads its bill, SIGTERMs the trainer (which checkpoints),
    lingers and destroys its instance, all within the cap."""
    fake = vast_env
    factor, cap = 5.0, 0.0065
    fake.faults.fast_billing(factor)
    backend = FakeProgramVast(
        Settings.from_env(),
        mode="graceful",  # runs until SIGTERM (or 60 s), then writes `stopped` with its checkpoint
        options=options(term_grace=1.5, bill_poll=1.0, destroy_reserve=2.0),
        transport=WorkdirTransport(fake),
    )
    choice = LaunchChoice(
        gpu_type="RTX 3090", hourly_rate=0.2, max_cost=cap, estimated_hours=1e-4, required_memory_gib=1.0, disk_gb=10.0
    )
    handle = backend.launch(_program(tmp_path), "vml-billcap", tmp_path / "job", choice)
    launched = time.monotonic()
    iid = int(handle.data.instance_id)
    quote = float(handle.data.price_per_hour or 0)
    real = float(fake.instance(iid)["dph_total"])
    assert real == pytest.approx(quote * factor, rel=1e-3)  # the API shows the rate it really bills
    money_s = cap / real * 3600
    assert 10 < money_s < 35, (money_s, quote)  # keeps this test under ~40 s
    assert handle.data.budget_seconds > 4 * money_s  # the time clock alone would bill ~4.75× the cap
    budget = decode_payload(dict(fake.instance(iid)["extra_env"])["VIBEML_JOB"]).budget
    assert budget.max_cost_usd == pytest.approx(cap)
    assert (budget.bill_poll_seconds, budget.reserve_seconds) == (1.0, 2.0)
    deadline = launched + 60
    while fake.instance_ids():  # no client: only the fake's own bookkeeping is looked at
        assert time.monotonic() < deadline, "the instance did not destroy itself"
        time.sleep(0.1)
    billed = fake.accrued_cost(iid)
    assert billed <= cap * 1.05, (billed, cap)
    assert billed >= cap * 0.5, (billed, cap)  # it ran until the money, not something else, said stop
    assert_nothing_billing(fake)
    log = (fake.workdir(iid) / "onstart.log").read_text()
    records = parse_runner_lines(log.splitlines())
    phases = [r["phase"] for r in records]
    bills = [r for r in records if r["phase"] == "bill"]
    assert bills and all(r["ok"] for r in bills) and bills[-1]["rate"] == pytest.approx(real, rel=1e-3)
    stopping = next(r for r in records if r["phase"] == "stopping")
    assert stopping["reason"] == "budget" and stopping["by"] == "bill", stopping
    assert phases.index("stopping") < phases.index("finished") < phases.index("destroying")
    stopped = [
        e
        for e in (parse_event(line[len(ECHO_PREFIX) :]) for line in log.splitlines() if line.startswith(ECHO_PREFIX))
        if isinstance(e, StoppedEvent)
    ]
    assert stopped and stopped[-1].checkpoint == "ckpt-1" and stopped[-1].reason == "signal"  # got SIGTERM
    with fake.state.lock:
        instance_key = fake.state.instances[iid].api_key
    assert instance_key not in log and support.SECRET_KEY not in log
    progress = backend.status(handle)  # a client comes back afterwards (it never saw the log): over, not done
    assert progress.status.is_terminal and progress.status is not JobStatus.COMPLETED
    assert "cap" in (progress.error or ""), progress.error
