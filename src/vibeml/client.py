"""The VibeML service: validate → cap → plan → budget gate → render program → launch → track.

Front ends (CLI, MCP, the async Python API) make one call here each; this is where the rules live. The
service is synchronous (it blocks on files, SQLite and HTTP); the async API (``vibeml.api``) and the MCP
server run its methods in a worker thread. Every answer is a typed model (``vibeml.reports``).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError

from vibeml.backends.base import HANDLE_FILENAME, LaunchCandidate, LaunchChoice
from vibeml.backends.registry import BackendRegistry, default_registry
from vibeml.config.budget import BudgetCheck, BudgetStatus, check_budget
from vibeml.config.preferences import PreferencesStore
from vibeml.curves import record_cost_sample
from vibeml.estimate.planner import (
    Plan,
    PlanOption,
    request_for_option,
    request_for_processes,
    unsupported_strategies,
)
from vibeml.evaluation import check_eval_inputs
from vibeml.exceptions import (
    ConfigurationError,
    ResourceError,
    ValidationError,
    VibeMLError,
)
from vibeml.inputs import check_cached_when_offline, dataset_stats, hub_secrets, hub_token, resolve_local_inputs
from vibeml.jobs.store import MAX_LIST_LIMIT, JobStore, utcnow
from vibeml.models import CostEstimate, Hyperparameters, JobRecord, JobStatus, TrainingRequest, load_handle
from vibeml.processes import process_alive, start_time
from vibeml.reports import LaunchPreview, PlanReport
from vibeml.safe_paths import make_private_dir
from vibeml.settings import Settings
from vibeml.tracking import check_report_to, tracker_secrets
from vibeml.workflows.registry import TrainingProgram, get_workflow, render_program

if TYPE_CHECKING:
    from vibeml.estimate.planner import PlanConstraints
    from vibeml.estimate.report import EstimateQuery, PlanQuery
    from vibeml.reports import (
        EstimateReport,
        GpuRecommendation,
        GpuReport,
        OffersReport,
        OrphanedResource,
        ReconcileReport,
        SpendingReport,
    )
    from vibeml.results.export import ExportReport
    from vibeml.results.hub import PushReport
    from vibeml.results.service import ChatSession, Generation
    from vibeml.validation.dataset import DatasetReport
    from vibeml.validation.model import ModelInfo

__all__ = ["LaunchPreparation", "VibeML", "build_request", "dataset_stats"]

_LAUNCH_ADOPT_SECONDS = 120
logger = logging.getLogger(__name__)


def _launcher() -> dict[str, Any]:
    """This process, as a job's "launching" event names it (pid and start time tell a reused pid apart)."""
    pid = os.getpid()
    return {"pid": pid, "start": start_time(pid)}


def build_request(**fields: Any) -> TrainingRequest:
    """Build a ``TrainingRequest``, turning pydantic's errors into one clear ``ValidationError``."""
    try:
        return TrainingRequest.model_validate(fields)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic(
            exc, "training request", "Fix the named fields; `vibeml launch --help` lists every option and its range."
        ) from None


_FREE = CostEstimate(
    gpu_type="local",
    hourly_rate=0.0,
    estimated_duration_hours=0.0,
    min_cost=0.0,
    expected_cost=0.0,
    max_cost=0.0,
    notes=("runs on this machine: no cloud charges",),
)


class LaunchPreparation(BaseModel):
    """Everything a launch decided before starting anything (``VibeML.prepare_launch``).

    ``request`` is the request as it will run: local paths absolute, the per-job cap applied.
    ``program`` holds the hub token (if any) as a secret that no dump includes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request: TrainingRequest
    all_local: bool = Field(description="Everything the job reads is local (the hub stays offline).")
    estimate: CostEstimate
    plan: Plan | None = Field(description="Paid backends: every choice, cheapest first.")
    option: PlanOption | None = Field(description="Paid backends: the choice made.")
    choice: LaunchChoice | None = Field(description="Paid backends: what the backend is told to rent.")
    budget: BudgetCheck
    job_id: str
    job_dir: Path
    output_dir: str
    program: TrainingProgram
    resume_notes: list[str] = Field(default_factory=list, description="Resuming: what was chosen and skipped.")

    def preview(self, top: int = 10) -> LaunchPreview:
        return LaunchPreview(
            request=self.request,
            estimate=self.estimate,
            plan=None if self.plan is None else PlanReport.from_plan(self.plan, [], top),
            choice=self.choice,
            trainer_max_runtime_seconds=self.program.config.max_runtime_seconds,
            budget=self.budget,
        )


class VibeML:
    """The service behind every front end.

    Args:
        settings: The settings tree (where things live, each backend's section); read from the environment
            (``Settings.from_env()``) when omitted: front ends build it once and pass it.
        store: The jobs store; opened at ``settings.db_path`` when omitted.
        backends: The backend registry; the built-ins when omitted.
        preferences: The user's preferences (caps, monthly budget); from the config dir when omitted.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        store: JobStore | None = None,
        backends: BackendRegistry | None = None,
        preferences: PreferencesStore | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._store = store
        self.backends = backends or default_registry(self.settings)
        self._preferences = preferences
        self._open_lock = threading.Lock()

    # Opened on first use: estimates and plans need neither, and `vibeml estimate` must start fast.
    @property
    def store(self) -> JobStore:
        with self._open_lock:  # MCP tools call in from several threads at once: one store for all
            if self._store is None:
                self._store = JobStore(self.settings.db_path)
            return self._store

    @property
    def preferences(self) -> PreferencesStore:
        with self._open_lock:
            if self._preferences is None:
                self._preferences = PreferencesStore(self.settings.config_dir)
            return self._preferences

    # ------------------------------------------------------------------------------- validation

    def _hub_token(self) -> str | None:
        return hub_token(self.settings)

    def _hub_secrets(self) -> dict[str, SecretStr]:
        return hub_secrets(self.settings)

    def _resolve_local_inputs(self, request: TrainingRequest) -> tuple[TrainingRequest, bool]:
        return resolve_local_inputs(request, self.settings)

    def estimate(self, request: TrainingRequest) -> CostEstimate:
        """Expected cost of a request on its backend: local runs are free; paid ones are planned as the launch
        plans them (with the same per-job cap), but no cap is required and no budget is checked."""
        if not self._is_paid(request):
            return _FREE
        return self.plan_launch(self._apply_cap(request, required=False))[0].estimate.cost

    def _is_paid(self, request: TrainingRequest) -> bool:
        return not self.backends.get(request.backend).capabilities.free

    def plan(self, request: TrainingRequest, constraints: PlanConstraints | None = None) -> Plan:
        """Every (cloud, GPU, count, market) choice for the request's backend, cheapest total cost first."""
        from vibeml.catalog.architectures import resolve_architecture
        from vibeml.catalog.prices import load_price_table
        from vibeml.estimate.planner import PlanConstraints as _PC
        from vibeml.estimate.planner import plan_request

        backend = self.backends.get(request.backend)
        c = constraints or _PC()
        if c.clouds is None and backend.clouds is not None:
            c = c.model_copy(update={"clouds": backend.clouds})
        if "max_nodes" not in c.model_fields_set:  # the backend's reach: one machine, or several (SkyPilot)
            multi = backend.capabilities.multi_node.supported
            c = c.model_copy(update={"max_nodes": max(1, backend.max_nodes) if multi else 1})
        if not c.unsupported_strategies:
            c = c.model_copy(update={"unsupported_strategies": unsupported_strategies(request, backend)})
        arch = resolve_architecture(request.model, hub=self.settings.hub, token_provider=self._hub_token)
        prices = load_price_table()
        live = backend.live_quotes(request)
        if live:
            # A live marketplace search lists everything that cloud offers right now: it replaces the table.
            prices = prices.with_live(live, replace_cloud=True)
        stats = dataset_stats(
            request.dataset, dataset_format=request.dataset_format, column_mapping=request.column_mapping
        )
        return plan_request(request, arch, prices, c, dataset=stats)

    # ------------------------------------------------------------------ estimates without a request

    def estimate_report(self, query: EstimateQuery) -> EstimateReport:
        """`vibeml estimate` / MCP `estimate_training_cost`: memory, speed, time and cost on one GPU."""
        from vibeml.catalog.architectures import resolve_architecture
        from vibeml.catalog.prices import load_price_table
        from vibeml.estimate.report import estimate_report

        arch = resolve_architecture(query.model, hub=self.settings.hub, token_provider=self._hub_token)
        return estimate_report(query, arch, load_price_table())

    def plan_report(self, query: PlanQuery, *, offline: bool = False) -> PlanReport:
        """`vibeml plan` / MCP `plan_training`: every choice that fits, cheapest total cost first; priced
        with live Vast offers (a key stored) and SkyPilot's catalogue when present, unless ``offline``."""
        from vibeml.catalog.architectures import resolve_architecture
        from vibeml.estimate.prices import plan_prices, stale_quotes
        from vibeml.estimate.report import plan_report

        arch = resolve_architecture(query.model, hub=self.settings.hub, token_provider=self._hub_token)
        counts = tuple(query.gpu_counts) if query.gpu_counts else (1, 2, 4, 8)
        prices, info = plan_prices(self.settings, offline=offline, gpu_counts=counts, spot=query.spot)
        report = plan_report(query, arch, prices)
        stale = stale_quotes(report.options, prices, utcnow().date(), info.stale_after_days)
        return report.model_copy(update={"prices": info.model_copy(update={"stale": stale})})

    def gpu_report(self) -> GpuReport:
        """`vibeml gpus` / MCP: GPU facts and the cheapest catalogued prices."""
        from vibeml.catalog.prices import load_price_table
        from vibeml.estimate.report import gpu_report

        return gpu_report(load_price_table())

    def recommend_gpu(self, model: str, use_quantization: bool = False) -> GpuRecommendation:
        """The cheapest GPU type that fits a LoRA (or QLoRA) fine-tune of ``model``, with its memory need."""
        from vibeml.reports import GpuRecommendation
        from vibeml.validation.model import ModelValidator

        v = ModelValidator(settings=self.settings)
        return GpuRecommendation(
            model=model,
            use_quantization=use_quantization,
            gpu_type=v.recommend_gpu_type(model, use_quantization),
            memory_required_gib=round(v.calculate_gpu_memory_required(model, 1, use_quantization), 3),
        )

    def plan_launch(self, request: TrainingRequest) -> tuple[PlanOption, LaunchChoice]:
        """The cheapest choice that fits and its budget-derived runtime cap (raises when none fits)."""
        _, best, choice = self._choose(request)
        return best, choice

    def _choose(self, request: TrainingRequest) -> tuple[Plan, PlanOption, LaunchChoice]:
        plan = self.plan(request)
        best = plan.cheapest
        if best is None:  # the planner raises when nothing fits; this is a guard
            raise ResourceError(f"no GPU choice fits {request.model}", {"model": request.model})
        cap = request.max_cost
        runtime = None if cap is None or best.hourly_rate <= 0 else cap / best.hourly_rate * 3600
        # A LaunchChoice's rates are per node (all its GPUs); the plan's are for the whole job.
        candidates = tuple(
            LaunchCandidate(
                gpu_type=o.gpu,
                gpu_count=o.gpu_count,
                cloud=o.cloud,
                region=o.region,
                use_spot=o.spot,
                hourly_rate=o.hourly_rate / o.num_nodes,
            )
            for o in plan.options[1:6]
            if (o.gpu, o.gpu_count, o.num_nodes) == (best.gpu, best.gpu_count, best.num_nodes)
            and o.expected_cost <= best.expected_cost * 1.05
        )
        choice = LaunchChoice(
            gpu_type=best.gpu,
            gpu_count=best.gpu_count,
            num_nodes=best.num_nodes,
            cloud=best.cloud,
            region=best.region,
            use_spot=best.spot,
            hourly_rate=best.hourly_rate / best.num_nodes,
            max_cost=cap,
            estimated_hours=best.hours,
            required_memory_gib=best.memory_gib,
            disk_gb=best.estimate.disk_gb,
            strategy=best.strategy,
            max_runtime_seconds=runtime,
            candidates=candidates,
        )
        return plan, best, choice

    def check_budget(self, request: TrainingRequest, estimate: CostEstimate) -> BudgetCheck:
        """Refuse before anything starts when the job does not fit its cap or the monthly budget."""
        prefs = self.preferences.load()
        self.settle_ledger()
        spent, committed = self.store.month_total(utcnow().strftime("%Y-%m"))
        return check_budget(estimate, request.max_cost, prefs, spent, committed)

    def _apply_cap(self, request: TrainingRequest, *, required: bool) -> TrainingRequest:
        """A paid request's per-job cap: its own, else the preference ``max_cost_per_job``."""
        if request.max_cost is not None:
            return request
        cap = self.preferences.load().max_cost_per_job
        if cap is not None:
            return request.model_copy(update={"max_cost": cap})
        if required:
            raise ConfigurationError(
                f"the {request.backend} backend rents paid GPUs: give a budget cap",
                {"backend": request.backend},
                "Add --max-cost USD (or set a default: `vibeml budget set --per-job USD`).",
            )
        return request

    def prepare_launch(self, request: TrainingRequest) -> LaunchPreparation:
        """Everything a launch decides before it starts anything, in one place: validate (workflow, backend
        capabilities, local paths and the dataset check) → cap (paid backends need one) → plan (paid
        backends: the cheapest choice that fits) → budget gate → render the trainer program.

        Nothing is written (but the ledger settling jobs that are over) and nothing is rented; ``launch`` runs
        exactly this and then starts the job, and ``preview_launch`` (MCP ``dry_run``) returns its summary, so
        a preview raises what a launch would.

        Raises:
            ConfigurationError: Unknown workflow or backend, an unsupported option, or no cap for a paid backend.
            ModelNotFoundError, DatasetError: A local path is missing or the data is unusable.
            BudgetExceededError: Over the per-job cap or the monthly budget.
            ResourceError: No GPU choice fits.
        """

        from vibeml.resuming import resume_source

        workflow = get_workflow(request.workflow)
        backend = self.backends.get(request.backend)
        backend.check(request)
        request, all_local = self._resolve_local_inputs(request)
        request, eval_local = check_eval_inputs(request, self.settings)  # the eval set, checked the same way
        all_local = all_local and eval_local
        check_report_to(request, paid=not backend.capabilities.free)
        self._check_options(request, workflow.method)
        resume = resume_source(self, request)
        if backend.capabilities.free and not all_local:
            from vibeml.validation.hub import is_offline

            if is_offline(self.settings.hub):  # the run reads only this machine's caches
                check_cached_when_offline(request, self.settings)
        plan: Plan | None = None
        option: PlanOption | None = None
        choice: LaunchChoice | None = None
        trainer_runtime: float | None = None
        if backend.capabilities.free:
            estimate = _FREE
            # No plan splits the batch here: --gpu-count N processes train the same effective batch as one.
            request = request_for_processes(request, request.gpu_count)
        else:
            request = self._apply_cap(request, required=True)
            plan, option, choice = self._choose(request)
            estimate = option.estimate.cost
            request = request_for_option(request, option)  # runs exactly the configuration the plan chose
            if choice.max_runtime_seconds is not None:
                # The trainer checkpoints and stops before the machine's budget runs out (setup included).
                setup_s = option.setup_hours * 3600
                trainer_runtime = max(60.0, choice.max_runtime_seconds - setup_s - 120.0)
        budget = self.check_budget(request, estimate)

        job_id = self._new_job_id()
        job_dir = self.job_dir(job_id)
        output_dir = request.output_dir or str(job_dir / "output")
        env = {"HF_HUB_OFFLINE": "1"} if all_local else {}
        if self.settings.hub.endpoint:
            env["HF_ENDPOINT"] = self.settings.hub.endpoint
        program = render_program(
            request,
            job_id,
            output_dir=output_dir,
            checkpoint_dir=str(job_dir / "checkpoints"),
            events_path=str(job_dir / "events.jsonl"),
            env=env,
            secrets={**(self._hub_secrets() if not all_local else {}), **tracker_secrets(request, self.settings)},
            max_runtime_seconds=trainer_runtime,
            gpu_count=choice.gpu_count if choice is not None else None,  # one trainer process per GPU
            num_nodes=choice.num_nodes if choice is not None else 1,
            resume_from_checkpoint=str(resume.checkpoint) if resume else None,
        )
        if option is not None and "strategy" in type(program.config).model_fields:  # the parallel trainer's field
            program.config = program.config.model_copy(update={"strategy": option.strategy})
        notes = [*resume.notes, f"continuing job {resume.job_id} from step {resume.step}"] if resume else []
        return LaunchPreparation(
            request=request,
            all_local=all_local,
            estimate=estimate,
            plan=plan,
            option=option,
            choice=choice,
            budget=budget,
            job_id=job_id,
            job_dir=job_dir,
            output_dir=output_dir,
            program=program,
            resume_notes=notes,
        )

    def _check_options(self, request: TrainingRequest, method: str) -> None:
        """Options this request would ignore are refused; a push needs a token before the job runs."""
        from vibeml.results.service import check_push_request
        from vibeml.validation.options import check_option_combinations

        check_option_combinations(request, method)
        check_push_request(self, request)

    def preview_launch(self, request: TrainingRequest) -> LaunchPreview:
        """What a launch would do, starting nothing (``prepare_launch``'s summary): raises exactly what
        ``launch`` raises before it starts anything."""
        return self.prepare_launch(request).preview()

    def search_offers(
        self, query: str = "", type: str = "on-demand", order: str = "dph_total", limit: int = 20
    ) -> OffersReport:
        """Live Vast.ai offers in Vast's query language (the key: ``VAST_API_KEY``, the credential store, or
        Vast's own key files)."""
        from vibeml.reports import Offer, OffersReport
        from vibeml.vast import VastAI

        with VastAI.from_settings(self.settings, raw=True, quiet=True) as vast:
            rows = vast.search_offers(query, type=type, order=order, limit=limit)
        return OffersReport(query=query, type=type, order=order, offers=[Offer.model_validate(r) for r in rows])

    # ----------------------------------------------------------------------------------- budget

    def budget_status(self) -> BudgetStatus:
        prefs = self.preferences.load()
        self.settle_ledger()
        month = utcnow().strftime("%Y-%m")
        spent, committed = self.store.month_total(month)
        remaining = None if prefs.monthly_budget is None else max(0.0, prefs.monthly_budget - spent - committed)
        return BudgetStatus(
            month=month,
            monthly_budget=prefs.monthly_budget,
            max_cost_per_job=prefs.max_cost_per_job,
            warning_threshold=prefs.budget_warning_threshold,
            spent=round(spent, 4),
            committed=round(committed, 4),
            remaining=None if remaining is None else round(remaining, 4),
        )

    def set_budget(
        self, monthly: float | None = None, per_job: float | None = None, warn_at: float | None = None
    ) -> BudgetStatus:
        """Change the budget preferences together: all are validated before anything is written."""
        changes = {"monthly_budget": monthly, "max_cost_per_job": per_job, "budget_warning_threshold": warn_at}
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes:
            self.preferences.update(**changes)
        return self.budget_status()

    def spending(self, month: str | None = None) -> SpendingReport:
        """The budget and the ledger of a month ('YYYY-MM'; default this month; 'all' for every month)."""
        from vibeml.reports import SpendingLine, SpendingReport

        if month is not None and month != "all" and not re.match(r"^\d{4}-\d{2}$", month):
            raise ValidationError(
                f"month must look like 2026-11 (or be 'all'), not {month!r}"[:120], {"month": month[:40]}
            )
        month = month or utcnow().strftime("%Y-%m")
        budget = self.budget_status()  # settles the ledger first
        lines = [SpendingLine.model_validate(r) for r in self.store.spending(None if month == "all" else month)]
        return SpendingReport(month=month, budget=budget, ledger=lines, total=round(sum(x.cost for x in lines), 4))

    # ----------------------------------------------------------------------------------- launch

    def _new_job_id(self) -> str:
        return "vml-" + secrets.token_hex(4)

    def job_dir(self, job_id: str) -> Path:
        return self.settings.jobs_dir / job_id

    def launch(self, request: TrainingRequest, confirm: Callable[[LaunchPreparation], None] | None = None) -> JobRecord:
        """Prepare (``prepare_launch``: validate, cap, plan, budget gate, program), then start the job.
        Returns once the job has started; the record carries the budget warnings.

        ``confirm`` sees the preparation that is about to start, before anything is written or rented, and
        raises to refuse it (the MCP server checks the person's yes for exactly this plan there).
        """
        prep = self.prepare_launch(request)
        if confirm is not None:
            confirm(prep)
        request, job_id, job_dir = prep.request, prep.job_id, prep.job_dir
        if job_dir.exists():  # ids are random: a clash means something is badly wrong
            raise ConfigurationError(f"job folder {job_dir} already exists", {"job_dir": str(job_dir)})
        make_private_dir(job_dir)
        now = utcnow()
        record = JobRecord(
            job_id=job_id,
            name=request.name,
            status=JobStatus.PENDING,
            backend=request.backend,
            request=request,
            created_at=now,
            updated_at=now,
            output_dir=prep.output_dir,
            estimate=prep.estimate,
        )
        self.store.create(record)
        self.store.record_estimate(job_id, request.backend, prep.estimate.expected_cost, request.max_cost)
        self.store.add_event(job_id, "launching", _launcher())  # a crashed launcher is told from a slow one
        try:
            handle = self.backends.get(request.backend).launch(prep.program, job_id, job_dir, prep.choice)
        except BaseException as exc:
            self._settle_failed_launch(job_id, exc)
            raise
        warnings = list(prep.budget.warnings)
        for warning in warnings:
            self.store.add_event(job_id, "warning", {"message": warning})
        for note in prep.resume_notes:
            self.store.add_event(job_id, "resume", {"message": note})
        record = self.store.update(job_id, handle=handle, status=JobStatus.PROVISIONING)
        return record.model_copy(update={"warnings": warnings, "notes": list(prep.resume_notes)})

    def resume(
        self, job_id: str, confirm: Callable[[LaunchPreparation], None] | None = None, **overrides: Any
    ) -> JobRecord:
        """Launch a new job that continues ``job_id`` from its last complete checkpoint (same request,
        ``overrides`` laid over it: e.g. ``backend="vast"``, ``max_cost``, ``max_steps``); see
        :mod:`vibeml.resuming`."""
        from vibeml.resuming import resume_request

        return self.launch(resume_request(self, job_id, **overrides), confirm)

    def request_from(
        self, model: str | None = None, dataset: str | None = None, *, demo: bool = False, **fields: Any
    ) -> TrainingRequest:
        """The one way a front end (CLI, MCP, the Python API) turns what a user gave into a request.

        ``demo=True`` takes the bundled tiny model and dataset and excludes ``model``/``dataset``; otherwise
        both are required. Every other field is a ``TrainingRequest`` field, flat or in ``hyperparameters``.

        Raises:
            ConfigurationError: ``demo`` with a model or dataset, or a model or dataset missing.
            ValidationError: A field is unknown, of the wrong type or out of range.
        """
        if not isinstance(demo, bool):
            raise ValidationError(f"demo must be true or false, not {demo!r}"[:120], {"demo": str(demo)[:40]})
        if demo:
            if model is not None or dataset is not None:
                raise ConfigurationError(
                    "demo (--demo) uses the bundled model and dataset; a model or dataset cannot be given with it",
                    {"model": model, "dataset": dataset},
                    "Drop demo to train your own model, or drop the model and dataset.",
                )
            return self.demo_request(**fields)
        if not model or not dataset:
            raise ConfigurationError(
                "give --model and --dataset (model and dataset in Python and MCP), or --demo for the bundled example",
                {"model": model, "dataset": dataset},
                "Example: vibeml launch --model Qwen/Qwen2.5-0.5B --dataset ./data.jsonl --max-cost 5",
            )
        return build_request(model=model, dataset=dataset, **fields)

    def demo_request(self, **overrides: Any) -> TrainingRequest:
        """The bundled demo: a tiny model and dataset built offline on first use. ``overrides`` are request
        fields (flat or in ``hyperparameters``) laid over the demo's; each is validated like any request's.

        Raises:
            ValidationError: A field is unknown or out of range, or max_steps and num_epochs are both given.
        """
        from vibeml.demo.assets import DEMO_SAMPLE_PROMPTS, demo_hyperparameters, ensure_demo_assets

        overrides = dict(overrides)
        nested = overrides.pop("hyperparameters", None)
        if isinstance(nested, Hyperparameters):
            nested = nested.model_dump(exclude_unset=True)
        if nested is not None and not isinstance(nested, dict):
            raise ValidationError(
                f"hyperparameters must be a mapping of field to value, not {type(nested).__name__}",
                {"hyperparameters": type(nested).__name__},
            )
        given = {
            k: v
            for k, v in {**(nested or {}), **overrides}.items()
            if v is not None and (k in Hyperparameters.model_fields or k in (nested or {}))
        }
        fields = {k: v for k, v in overrides.items() if k not in Hyperparameters.model_fields}
        if given.get("max_steps") is not None and given.get("num_epochs") is not None:
            raise ValidationError(
                "give max_steps or num_epochs, not both",
                {"fields": ["max_steps", "num_epochs"]},
                "Drop one of them (CLI: --max-steps or --epochs).",
            )
        hyper = dict(demo_hyperparameters())
        if given.get("max_steps") is not None or given.get("num_epochs") is not None:
            hyper.pop("max_steps", None)
            hyper.pop("num_epochs", None)
        batch_keys = ("batch_size", "gradient_accumulation_steps")
        if any(k in given for k in (*batch_keys, "effective_batch")):
            for k in batch_keys:  # the user's batch: the demo's split of its own does not pin it
                hyper.pop(k, None)
        hyper.update(given)  # unknown names stay in, so validation names them
        base: dict[str, Any] = {
            "model": "vibeml/demo",
            "dataset": "vibeml/demo",
            "name": "demo",
            "sample_prompts": list(DEMO_SAMPLE_PROMPTS),
        }
        request = build_request(**{**base, **fields, "hyperparameters": hyper})  # before building anything
        # The demo's 16 × 1 is its default, not the user's choice: several GPUs (or a plan) may split it anew,
        # as they do a batch VibeML chose (see TrainingRequest's effective batch); the effective batch stays 16.
        request.hyperparameters.__pydantic_fields_set__.difference_update(k for k in batch_keys if k not in given)
        assets = ensure_demo_assets(self.settings.demo_dir)
        return request.model_copy(update={"model": str(assets.model_dir), "dataset": str(assets.dataset_path)})

    # ----------------------------------------------------------------------------------- track

    def _adopt_handle(self, record: JobRecord) -> JobRecord:
        """A launcher killed between starting the process and saving the handle left it on disk.

        Raises:
            BackendError: The handle file is not a valid handle (it is written atomically, so it was
                damaged or changed outside VibeML).
        """
        path = self.job_dir(record.job_id) / HANDLE_FILENAME
        if record.handle is None and path.exists():
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                return record
            return self.store.update(record.job_id, handle=load_handle(text, where=str(path)))
        return record

    def _settle_failed_launch(self, job_id: str, exc: BaseException) -> JobRecord:
        """A launch raised: the job failed, and its ledger line is settled at what the backend billed (a
        handle the backend left on disk says what was rented; its status, the bill), else 0."""
        error = exc.message if isinstance(exc, VibeMLError) else (str(exc) or type(exc).__name__)
        billed: dict[str, Any] = {}
        try:
            record = self._adopt_handle(self.store.get(job_id))
            if record.handle is not None and isinstance(exc, Exception):
                billed["cost_so_far"] = self.backends.get(record.backend).status(record.handle).cost_so_far
        except Exception as inner:  # the launch's own error is the one the caller sees
            logger.warning("job %s: the bill of the failed launch is unknown (%s)", job_id, inner)
        return self.store.update(job_id, status=JobStatus.FAILED, error=error, finished_at=utcnow(), **billed)

    def _launcher_alive(self, record: JobRecord) -> bool:
        """Is the process that launched this job still running (and still launching it)? Rows of older
        VibeMLs name no launcher: they count as gone."""
        marks = [e for e in self.store.events(record.job_id) if e.get("kind") == "launching"]
        if not marks:
            return False
        pid, start = marks[-1].get("pid"), marks[-1].get("start")
        if not isinstance(pid, int):
            return False
        # This process counts too: a launch here settles itself when it raises, so an open row is still going.
        return process_alive(pid, start if isinstance(start, int) else None)

    def _settle_half_finished(self, record: JobRecord) -> JobRecord:
        """A launch row a crashed launcher left (no handle, launcher gone): failed, at its last known cost
        (0: nothing was rented, or nothing VibeML can find; a recorded rental is named for cleanup)."""
        rented = [
            str(i["resource_id"])
            for i in self.store.intents(record.backend)
            if i["job_id"] == record.job_id and i.get("resource_id")
        ]
        what = "before the job started"
        if rented:
            what += f"; it had rented {', '.join(rented)}: `vibeml reconcile --cleanup` destroys it"
        return self.store.update(
            record.job_id,
            status=JobStatus.FAILED,
            error=f"the launch did not complete (the launcher stopped {what})",
            finished_at=utcnow(),
        )

    def settle_ledger(self) -> None:
        """Settle what the ledger still counts as committed but is over: open lines of terminal jobs, and
        half-finished launches (no handle, older than two minutes, launcher gone) — those with a handle
        file go through their backend's status (which cleans up and bills), the rest fail at cost 0."""
        self.store.settle_terminal()
        cutoff = utcnow() - timedelta(seconds=_LAUNCH_ADOPT_SECONDS)
        live = {s for s in JobStatus if not s.is_terminal}
        for record in self.store.list_jobs(limit=MAX_LIST_LIMIT, statuses=live):
            if record.handle is None and record.created_at < cutoff:
                try:
                    self._refresh_sync(record)
                except VibeMLError as exc:  # the ledger still answers; it stays committed until it can settle
                    logger.warning("job %s: could not settle its half-finished launch (%s)", record.job_id, exc)

    def _refresh_sync(self, record: JobRecord) -> JobRecord:
        if record.status.is_terminal:
            return record
        record = self._adopt_handle(record)
        if record.handle is None:
            if utcnow() - record.created_at > timedelta(seconds=_LAUNCH_ADOPT_SECONDS) and not self._launcher_alive(
                record
            ):
                return self._settle_half_finished(record)
            return record
        backend = self.backends.get(record.backend)
        progress = backend.status(record.handle)
        status = progress.status
        error = progress.error
        if status is JobStatus.FAILED and record.stop_requested:
            status, error = JobStatus.STOPPED, "stopped by request"
        elif status is JobStatus.PENDING:
            status = JobStatus.PROVISIONING
        elif status is JobStatus.RUNNING and record.stop_requested:
            status = JobStatus.STOPPING
        cap = record.request.max_cost
        if cap is not None and progress.cost_so_far >= cap and not status.is_terminal:
            # The client-side watchdog: accrued cost reached the cap → stop now (the machine's own timer
            # is the first line; this is the second).
            self.store.add_event(record.job_id, "budget_cap", {"cost_so_far": progress.cost_so_far, "cap": cap})
            backend.stop(record.handle, grace_seconds=0)
            status, error = JobStatus.STOPPED, f"stopped: the budget cap ${cap:.4f} was reached"
        progress = progress.model_copy(update={"status": status, "error": error})
        updates: dict[str, Any] = {"status": status, "progress": progress, "cost_so_far": progress.cost_so_far}
        if status is JobStatus.RUNNING and record.started_at is None:
            updates["started_at"] = utcnow()
        self.store.record_spend(record.job_id, progress.cost_so_far, final=status.is_terminal)
        record_cost_sample(self.store, record, progress.cost_so_far)  # for `vibeml plot`'s cost curve
        if status.is_terminal:
            updates["finished_at"] = utcnow()
            if status is not JobStatus.COMPLETED:
                updates["error"] = error
            if progress.output_dir:
                updates["output_dir"] = progress.output_dir
        record = self.store.update(record.job_id, **updates)
        if status is JobStatus.COMPLETED and record.request.push_to_hub:
            from vibeml.results.service import push_on_success

            push_on_success(self, record)  # once; a failed push is a warning event, not a failed job
        return record

    def _settle_launches(self) -> None:
        """Let each backend with open create intents settle them (destroy late-landing instances no job
        uses; see ``Backend.settle_launches``), at most once a second; a provider that cannot be asked is
        not this command's error (the intents stay open for the next one)."""
        now = time.monotonic()
        if now - getattr(self, "_settled_at", -10.0) < 1.0:
            return
        self._settled_at = now
        try:
            names = self.store.open_intent_backends()
        except VibeMLError:
            return
        for name in names:
            try:
                self.backends.get(name).settle_launches()
            except VibeMLError as exc:
                logger.warning("could not settle earlier %s launches yet: %s", name, exc.message)

    def get_status(self, job_id: str) -> JobRecord:
        """The job, reconciled with its backend (id or unique prefix)."""
        self._settle_launches()
        return self._refresh_sync(self.store.find(job_id))

    def list_jobs(self, limit: int = 50, refresh: bool = True) -> list[JobRecord]:
        """Newest first, each reconciled with its backend (``refresh``)."""
        if refresh:
            self.settle_ledger()
            self._settle_launches()
        records = self.store.list_jobs(limit=limit)
        if refresh:
            records = [self._refresh_sync(r) for r in records]
        return records

    def logs(self, job_id: str, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        """Log lines of a job (the last ``tail``; ``follow`` keeps going until it ends)."""
        record = self._adopt_handle(self.store.find(job_id))
        if record.handle is None:
            return iter(())
        return self.backends.get(record.backend).logs(record.handle, tail=tail, follow=follow)

    def stop(self, job_id: str, grace_seconds: float | None = None) -> JobRecord:
        """Stop a job (checkpoint first when the trainer can). Stopping a finished job is a no-op."""
        record = self._refresh_sync(self.store.find(job_id))
        if record.status.is_terminal:
            return record
        record = self.store.update(record.job_id, stop_requested=True, status=JobStatus.STOPPING)
        record = self._adopt_handle(record)
        if record.handle is not None:
            grace = self.settings.stop_grace_seconds if grace_seconds is None else grace_seconds
            self.backends.get(record.backend).stop(record.handle, grace_seconds=grace)
        record = self._refresh_sync(self.store.get(record.job_id))
        if not record.status.is_terminal:
            record = self.store.update(
                record.job_id, status=JobStatus.STOPPED, error="stopped by request", finished_at=utcnow()
            )
        return record

    def reconcile(
        self,
        cleanup: bool = False,
        backend: str | None = None,
        confirm: Callable[[list[OrphanedResource]], bool] | None = None,
    ) -> ReconcileReport:
        """Paid resources no live job uses, per paid backend already in use (all registered ones when
        ``cleanup``; only ``backend`` when given). ``cleanup`` destroys only those the backend owns (a
        recorded launch of this installation whose job is over); everything else is listed, left alone.

        ``confirm`` sees every resource cleanup would destroy (all backends together, before any is) and
        returns whether to go ahead (False: nothing is destroyed and the report says ``cleanup=False``);
        it may raise to refuse. It is not asked when there is nothing to destroy."""
        from vibeml.reports import OrphanedResource, ReconcileReport

        self.settle_ledger()
        self._settle_launches()
        records = self.store.list_jobs(limit=10_000)
        live = {r.job_id for r in records if not r.status.is_terminal}
        used = {r.backend for r in records}
        names = [self.backends.get(backend).name] if backend is not None else self.backends.names()
        found: list[OrphanedResource] = []
        others: list[OrphanedResource] = []
        owned_by: dict[str, list[OrphanedResource]] = {}
        for name in names:
            if backend is None and name not in used and not cleanup:
                continue
            impl = self.backends.get(name)
            if impl.capabilities.free:
                continue
            for item in impl.orphans(live):
                fields = {**item, "backend": name, "id": str(item["id"]), "owned": bool(item.get("owned", True))}
                resource = OrphanedResource.model_validate(fields)
                if resource.owned:
                    found.append(resource)
                    owned_by.setdefault(name, []).append(resource)
                else:
                    others.append(resource)
        if cleanup and found and confirm is not None and not confirm(list(found)):
            cleanup = False
        if cleanup and found:
            destroyed: dict[str, set[str]] = {
                name: set(self.backends.get(name).destroy_orphans([r.id for r in items]))
                for name, items in owned_by.items()
            }
            found = [r.model_copy(update={"destroyed": r.id in destroyed[r.backend]}) for r in found]
        return ReconcileReport(cleanup=cleanup, orphans=found, left_alone=others)

    # ------------------------------------------------------------------- using and sharing a result

    def generate(self, job_id: str, prompt: str, *, max_new_tokens: int = 256, device: str = "auto") -> Generation:
        """The finished job's model (base + adapter, on this machine) answering one prompt through its chat
        template (see ``vibeml.results``)."""
        from vibeml.results.service import generate

        return generate(self, job_id, prompt, max_new_tokens=max_new_tokens, device=device)  # type: ignore[arg-type]

    def open_chat(self, job_id: str, *, max_new_tokens: int = 256, device: str = "auto") -> ChatSession:
        """A conversation with the finished job's model (``session.say(text)`` → its answer)."""
        from vibeml.results.service import open_chat

        return open_chat(self, job_id, max_new_tokens=max_new_tokens, device=device)  # type: ignore[arg-type]

    def push(self, job_id: str, repo_id: str, *, private: bool = False, merged: bool = False) -> PushReport:
        """Push the finished job's adapter (and merged model), tokenizer and a model card to the hub."""
        from vibeml.results.service import push

        return push(self, job_id, repo_id, private=private, merged=merged)

    def export(
        self, job_id: str, *, merged: bool = True, output_dir: str | None = None, dtype: str = "bfloat16"
    ) -> ExportReport:
        """Merge the finished job's adapter into a bf16 (or fp32) reload of its base model."""
        from vibeml.results.service import export

        return export(self, job_id, merged=merged, output_dir=output_dir, dtype=dtype)  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------- validation

    def validate_model(self, model_id: str) -> ModelInfo:
        """Does the model exist, may the stored token download it, what is it (hub or local directory)."""
        from vibeml.validation.model import ModelValidator

        return ModelValidator(settings=self.settings).validate_model(model_id)

    def validate_dataset(
        self,
        dataset: str,
        model: str | None = None,
        dataset_format: str = "auto",
        *,
        column_mapping: dict[str, str] | None = None,
        split: str = "train",
        max_seq_length: int | None = None,
    ) -> DatasetReport:
        """Format, rows and token statistics of a local or hub dataset (tokens with ``model``'s tokenizer)."""
        from vibeml.validation.dataset import DatasetValidator

        return DatasetValidator(settings=self.settings).validate_dataset(
            dataset,
            model=model,
            dataset_format=dataset_format,
            column_mapping=column_mapping,
            split=split,
            max_seq_length=max_seq_length,
        )
