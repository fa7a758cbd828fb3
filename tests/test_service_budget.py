"""The service's money rules, through a paid backend: a real local process billed by the clock."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vibeml.backends.base import Capabilities, Capability, LaunchChoice
from vibeml.backends.local import LocalBackend
from vibeml.backends.registry import default_registry
from vibeml.client import VibeML, build_request
from vibeml.config.preferences import PreferencesStore
from vibeml.exceptions import BudgetExceededError, ConfigurationError
from vibeml.models import JobProgress, JobStatus, LocalHandle
from vibeml.settings import Settings
from vibeml.workflows.registry import TrainingProgram

pytestmark = pytest.mark.needs_train  # the train extra: skipped by `make test-compat`

HERE = Path(__file__).parent / "backends"
#: fake_program and the VibeML it imports: this checkout's, not whichever is installed
FAKE_PATH = os.pathsep.join([str(HERE), str(Path(__file__).resolve().parents[1] / "src")])


class MeteredBackend(LocalBackend):
    """Runs locally but bills like a rented GPU: hourly_rate × wall time since launch."""

    name: ClassVar[str] = "metered"
    capabilities: ClassVar[Capabilities] = LocalBackend.capabilities.model_copy(
        update={"free": False, "gpu_selection": Capability(supported=True)}
    )
    clouds: ClassVar[tuple[str, ...] | None] = ("vast",)
    rate_multiplier: ClassVar[float] = 1.0
    launched: ClassVar[list[LaunchChoice | None]] = []

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> LocalHandle:
        MeteredBackend.launched.append(choice)
        program = program.model_copy(update={"module": "fake_program"})
        program.env.update({"VIBEML_TEST_MODE": "graceful", "PYTHONPATH": FAKE_PATH})
        handle = super().launch(program, job_id, job_dir, choice)
        # The handle is the local backend's (typed, closed); the meter lives beside it in the job dir.
        meter = {"t0": time.time(), "rate": choice.hourly_rate if choice else 0.0}
        (job_dir / "meter.json").write_text(json.dumps(meter), encoding="utf-8")
        return handle

    def status(self, handle: LocalHandle) -> JobProgress:
        p = super().status(handle)
        meter = json.loads((Path(handle.job_dir) / "meter.json").read_text(encoding="utf-8"))
        cost = meter["rate"] * self.rate_multiplier * (time.time() - meter["t0"]) / 3600
        return p.model_copy(update={"cost_so_far": round(cost, 6)})


@pytest.fixture
def svc(vibeml_env: Path, demo_assets_dir: Path) -> VibeML:
    MeteredBackend.launched.clear()
    settings = Settings.from_env()
    registry = default_registry(settings)
    registry.register("metered", MeteredBackend)
    return VibeML(settings, backends=registry)


def _model(demo_assets_dir: Path) -> str:
    return str(next(demo_assets_dir.rglob("config.json")).parent)


def _req(demo_assets_dir: Path, **kw: Any) -> Any:
    data = next(demo_assets_dir.rglob("*.jsonl"))
    return build_request(model=_model(demo_assets_dir), dataset=str(data), backend="metered", max_steps=200, **kw)


def _no_jobs(svc: VibeML) -> None:
    assert svc.store.list_jobs() == []
    assert not svc.settings.jobs_dir.exists() or not any(svc.settings.jobs_dir.iterdir())


def test_paid_backend_needs_a_cap(svc: VibeML, demo_assets_dir: Path) -> None:

    with pytest.raises(ConfigurationError, match="give a budget cap"):
        svc.launch(_req(demo_assets_dir))
    _no_jobs(svc)


def test_over_budget_is_refused_before_anything_starts(svc: VibeML, demo_assets_dir: Path) -> None:

    with pytest.raises(BudgetExceededError) as info:
        svc.launch(_req(demo_assets_dir, max_cost=0.0001))
    assert info.value.context["max_cost"] == 0.0001
    _no_jobs(svc)
    assert MeteredBackend.launched == []


def test_monthly_budget_refuses_before_anything_starts(svc: VibeML, demo_assets_dir: Path) -> None:

    PreferencesStore(svc.settings.config_dir).update(monthly_budget=1.0)
    est = svc.estimate(_req(demo_assets_dir, max_cost=5))
    assert 0 < est.expected_cost < 1.0
    # Earlier jobs this month already spent nearly all of it.
    svc.store.create(_done_record())
    svc.store.record_estimate("vml-old00001", "vast", 0.99, 1.0)
    svc.store.record_spend("vml-old00001", 0.99, final=True)
    with pytest.raises(BudgetExceededError) as info:
        svc.launch(_req(demo_assets_dir, max_cost=5))
    assert info.value.context["spent_this_month"] == 0.99
    assert "budget set --monthly" in (info.value.recovery_suggestion or "")
    assert [r.job_id for r in svc.store.list_jobs()] == ["vml-old00001"]
    assert MeteredBackend.launched == []


def _done_record() -> Any:
    from vibeml.jobs.store import utcnow
    from vibeml.models import JobRecord, TrainingRequest

    now = utcnow()
    return JobRecord(
        job_id="vml-old00001",
        status=JobStatus.COMPLETED,
        backend="metered",
        created_at=now,
        updated_at=now,
        request=TrainingRequest(model="m/x", dataset="d/x"),
    )


def test_launch_gets_the_planners_choice_and_a_runtime_cap(svc: VibeML, demo_assets_dir: Path) -> None:

    record = svc.launch(_req(demo_assets_dir, max_cost=2.0))
    try:
        [choice] = MeteredBackend.launched
        assert choice is not None and choice.cloud == "vast" and choice.hourly_rate > 0
        assert choice.max_runtime_seconds == pytest.approx(2.0 / choice.hourly_rate * 3600)
        cfg = (svc.job_dir(record.job_id) / "config.json").read_text()
        assert '"max_runtime_seconds"' in cfg and record.estimate and record.estimate.expected_cost > 0
        assert svc.store.spending()[0]["estimated_cost"] == record.estimate.expected_cost
    finally:
        svc.stop(record.job_id, grace_seconds=5)


def test_watchdog_stops_a_job_whose_cost_reaches_the_cap(svc: VibeML, demo_assets_dir: Path) -> None:
    """The estimate was wrong (billing runs 100,000× faster): the job is stopped at the cap."""

    record = svc.launch(_req(demo_assets_dir, max_cost=0.5))
    MeteredBackend.rate_multiplier = 100_000.0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rec = svc.get_status(record.job_id)
            if rec.status.is_terminal:
                break
            time.sleep(0.2)
        assert rec.status is JobStatus.STOPPED and "budget cap" in (rec.error or "")
        pid = rec.handle.data.pid if rec.handle else 0
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        kinds = [e["kind"] for e in svc.store.events(record.job_id)]
        assert "budget_cap" in kinds
        [line] = svc.store.spending()
        assert line["final_cost"] is not None
    finally:
        MeteredBackend.rate_multiplier = 1.0
