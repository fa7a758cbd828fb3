"""One preparation step (``VibeML.prepare_launch``) behind the preview, the dry run and the launch.

A preview must raise exactly what the launch raises (same type, same message) and succeed exactly when the
launch gets past preparation to the backend's ``launch``. The backends here are the local backend's rules
(its capabilities and checks) with a ``launch`` that records its call and starts nothing, one free and one
billed like a rented GPU, so thousands of launches cost nothing and leave no process behind.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vibeml.backends.base import Capabilities, Capability, LaunchChoice
from vibeml.backends.local import LocalBackend
from vibeml.backends.registry import default_registry
from vibeml.client import VibeML, build_request
from vibeml.config.preferences import Preferences, PreferencesStore
from vibeml.exceptions import BudgetExceededError, ConfigurationError, VibeMLError
from vibeml.jobs.store import utcnow
from vibeml.models import JobHandle, JobRecord, JobStatus, LocalHandle, LocalHandleData, TrainingRequest
from vibeml.reports import LaunchPreview
from vibeml.settings import Settings
from vibeml.workflows.registry import TrainingProgram

MODEL = "Qwen/Qwen2.5-0.5B"  # a built-in architecture: planned offline


_NO_PID = 2**31 - 1


class RecordingLocal(LocalBackend):
    """The local backend's rules; ``launch`` records what it was given and starts nothing."""

    name: ClassVar[str] = "rec-local"
    calls: ClassVar[list[tuple[str, TrainingProgram, LaunchChoice | None]]] = []

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> JobHandle:
        RecordingLocal.calls.append((job_id, program, choice))
        # Handles are closed per backend kind: a local-rules backend stores the local kind. The pid is one no
        # process can have (above any pid_max), so a later status or stop touches nothing.
        data = LocalHandleData(
            pid=_NO_PID,
            pgid=_NO_PID,
            events_path=str(job_dir / "events.jsonl"),
            log_path=str(job_dir / "train.log"),
            output_dir=program.config.output_dir,
            argv=(),
        )
        return LocalHandle(job_id=job_id, backend_job_id=job_id, job_dir=str(job_dir), data=data)


class RecordingPaid(RecordingLocal):
    """Billed like a rented GPU (it needs a cap, a plan and the budget gate), priced from the Vast table."""

    name: ClassVar[str] = "rec-paid"
    capabilities: ClassVar[Capabilities] = LocalBackend.capabilities.model_copy(
        update={"free": False, "gpu_selection": Capability(supported=True), "spot": Capability(supported=True)}
    )
    clouds: ClassVar[tuple[str, ...] | None] = ("vast",)


def _service(home: Path, prefs: Preferences | None = None) -> VibeML:
    settings = Settings.from_env(home=home / "home")
    registry = default_registry(settings)
    registry.register("rec-local", RecordingLocal)
    registry.register("rec-paid", RecordingPaid)
    store = PreferencesStore(home / "config")
    if prefs is not None:
        store.save(prefs)
    return VibeML(settings, backends=registry, preferences=store)


def _data(path: Path, rows: list[dict[str, str]] | None = None) -> str:
    rows = rows or [{"instruction": f"What is {i} + 1?", "output": str(i + 1)} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _spent(svc: VibeML, amount: float) -> None:
    """An earlier job this month that cost ``amount``."""
    now = utcnow()
    record = JobRecord(
        job_id="vml-0ld00001",
        status=JobStatus.COMPLETED,
        backend="rec-paid",
        created_at=now,
        updated_at=now,
        request=TrainingRequest(model="m/x", dataset="d/x"),
    )
    svc.store.create(record)
    svc.store.record_estimate(record.job_id, "rec-paid", amount, None)
    svc.store.record_spend(record.job_id, amount, final=True)


def _outcome(fn: Any) -> VibeMLError | Any:
    try:
        return fn()
    except VibeMLError as exc:
        return exc


def _same_error(a: BaseException, b: BaseException) -> None:
    assert type(a) is type(b), (a, b)
    assert str(a) == str(b)
    assert getattr(a, "recovery_suggestion", None) == getattr(b, "recovery_suggestion", None)


def _nothing_started(svc: VibeML) -> None:
    assert RecordingLocal.calls == []
    assert [r.job_id for r in svc.store.list_jobs() if r.job_id != "vml-0ld00001"] == []
    assert not svc.settings.jobs_dir.exists() or not any(svc.settings.jobs_dir.iterdir())


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    RecordingLocal.calls.clear()


def test_without_a_cap_preview_and_launch_raise_the_same_error(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    request = build_request(model=MODEL, dataset=_data(tmp_path / "d.jsonl"), backend="rec-paid", max_steps=50)
    preview_error = _outcome(lambda: svc.preview_launch(request))
    launch_error = _outcome(lambda: svc.launch(request))
    assert isinstance(preview_error, ConfigurationError) and "give a budget cap" in preview_error.message
    _same_error(preview_error, launch_error)
    _nothing_started(svc)

    # The preference cap is the request's cap when it gives none: then both go ahead, with that cap.
    svc.preferences.update(max_cost_per_job=5.0)
    preview = svc.preview_launch(request)
    assert isinstance(preview, LaunchPreview) and preview.request.max_cost == 5.0 and preview.budget.job_cap == 5.0
    assert preview.choice is not None and preview.choice.max_cost == 5.0 and preview.plan is not None
    record = svc.launch(request)
    [(job_id, program, choice)] = RecordingLocal.calls
    assert job_id == record.job_id and record.request.max_cost == 5.0
    assert choice == preview.choice and record.estimate == preview.estimate
    assert program.config.max_runtime_seconds == preview.trainer_max_runtime_seconds is not None


@pytest.mark.parametrize("case", ["job cap", "monthly budget"])
def test_a_budget_that_cannot_hold_refuses_both_before_any_paid_call(tmp_path: Path, case: str) -> None:
    svc = _service(tmp_path, Preferences(monthly_budget=1.0) if case == "monthly budget" else None)
    data = _data(tmp_path / "d.jsonl")
    if case == "job cap":
        request = build_request(model=MODEL, dataset=data, backend="rec-paid", max_steps=500, max_cost=0.0001)
    else:
        _spent(svc, 0.9999)
        request = build_request(model=MODEL, dataset=data, backend="rec-paid", max_steps=500, max_cost=0.9)
        assert svc.estimate(request).expected_cost > 0.0001  # it fits its own cap, not what is left this month
    preview_error = _outcome(lambda: svc.preview_launch(request))
    launch_error = _outcome(lambda: svc.launch(request))
    assert isinstance(preview_error, BudgetExceededError), preview_error
    _same_error(preview_error, launch_error)
    assert preview_error.context == launch_error.context
    _nothing_started(svc)


def test_preview_is_the_prepared_launch(tmp_path: Path) -> None:
    """What the preview shows is what the launch hands the backend (the estimate, the choice, the cap)."""
    svc = _service(tmp_path, Preferences(monthly_budget=100.0, budget_warning_threshold=0.0))
    request = build_request(
        model=MODEL, dataset=_data(tmp_path / "d.jsonl"), backend="rec-paid", max_steps=200, max_cost=3.0
    )
    prep = svc.prepare_launch(request)
    assert prep.plan is not None and prep.option is not None and prep.option == prep.plan.cheapest
    assert prep.estimate == prep.option.estimate.cost and prep.choice is not None
    assert prep.request.dataset == str((tmp_path / "d.jsonl").resolve())  # paths made absolute
    assert not prep.job_dir.exists()  # preparing writes nothing
    assert "HF_TOKEN" not in prep.program.model_dump_json()
    preview = prep.preview()
    assert preview.plan is not None and preview.plan.options[0].expected_cost == pytest.approx(
        prep.option.expected_cost, abs=1e-4
    )
    assert preview.budget.warnings  # the warning threshold is 0: every paid job warns
    record = svc.launch(request)
    [(_, program, choice)] = RecordingLocal.calls
    assert choice == preview.choice and record.estimate == preview.estimate
    assert record.warnings == list(preview.budget.warnings)
    assert program.config.max_runtime_seconds == preview.trainer_max_runtime_seconds


def _mostly(usual: Any, *others: Any) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, so most cases get deep into the preparation."""
    return st.one_of(st.just(usual), st.just(usual), st.just(usual), st.sampled_from(others))


_CAPS = st.sampled_from([None, 0.0001, 0.05, 5.0, 5.0, 500.0])


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    backend=_mostly("rec-paid", "rec-local", "rec-local", "nope"),
    workflow=_mostly("trl-lora", "full", "qlora", "no-such-workflow"),
    dataset=_mostly("good", "missing", "broken", "unmapped columns", "mapped columns", "hub"),
    model=_mostly(MODEL, "./no/such/model", "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-8B"),
    max_steps=st.sampled_from([5, 400, 200_000]),
    max_cost=_CAPS,
    per_job=_CAPS,
    monthly=st.sampled_from([None, 0.01, 1.0, 1000.0]),
    spent=st.sampled_from([0.0, 0.5, 0.99]),
    use_spot=_mostly(False, True),
    gpu_type=_mostly(None, "H100", "RTX 4090"),
)
def test_preview_succeeds_exactly_when_the_launch_gets_past_preparation(
    tmp_path: Path,
    backend: str,
    workflow: str,
    dataset: str,
    model: str,
    max_steps: int,
    max_cost: float | None,
    per_job: float | None,
    monthly: float | None,
    spent: float,
    use_spot: bool,
    gpu_type: str | None,
) -> None:
    RecordingLocal.calls.clear()
    try:
        prefs = Preferences(max_cost_per_job=per_job, monthly_budget=monthly)
    except Exception:  # a per-job cap above the monthly budget is refused when set
        assume(False)
        raise
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    svc = _service(home, prefs)
    if spent:
        _spent(svc, spent)
    qa = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(20)]
    data, mapping = {
        "good": (_data(home / "d.jsonl"), None),
        "missing": (str(home / "missing.jsonl"), None),
        "broken": (str(home / "broken.jsonl"), None),
        "unmapped columns": (_data(home / "qa.jsonl", qa), None),
        "mapped columns": (_data(home / "qa.jsonl", qa), {"question": "instruction", "answer": "output"}),
        "hub": ("tatsu-lab/alpaca", None),
    }[dataset]
    if dataset == "broken":
        Path(data).write_text('{"instruction": "a", "output": "b"}\n{not json\n', encoding="utf-8")
    request = build_request(
        model=model,
        dataset=data,
        backend=backend,
        workflow=workflow,
        max_steps=max_steps,
        max_cost=max_cost,
        use_spot=use_spot,
        gpu_type=gpu_type,
        column_mapping=mapping,
    )

    jobs = [r.job_id for r in svc.store.list_jobs()]
    preview = _outcome(lambda: svc.preview_launch(request))
    assert RecordingLocal.calls == [] and [r.job_id for r in svc.store.list_jobs()] == jobs, "a preview starts nothing"
    launched = _outcome(lambda: svc.launch(request))
    if isinstance(preview, VibeMLError):
        _same_error(preview, launched)
        assert RecordingLocal.calls == [], "the launch got past the preparation its preview refused"
    else:
        assert isinstance(preview, LaunchPreview)
        assert isinstance(launched, JobRecord), f"the preview passed but the launch raised {launched!r}"
        [(job_id, _, choice)] = RecordingLocal.calls
        assert job_id == launched.job_id and choice == preview.choice and launched.estimate == preview.estimate
        assert launched.request == preview.request
