"""The Vast.ai backend: rent the cheapest offer that fits, train, bring the adapter back, destroy.

Launch (returns once the instance runs and its inputs are in place):

1. search offers for the planner's GPU (``num_gpus``, ``gpu_ram`` ≥ the memory need, reliability floor,
   ``cuda_max_good`` ≥ the image's CUDA, ``disk_space`` ≥ the job's disk, rentable; interruptible bids for
   spot) and rank them by expected total job cost (:mod:`vibeml.backends.vast.offers`);
2. record the intent (job, label, offer, this installation's id) in the job store, then create the
   instance: image :data:`~vibeml.backends.vast.options.DEFAULT_IMAGE`, label
   ``vibeml-<installation id>-<job_id>``, the fixed onstart :data:`~vibeml.backends.vast.remote.ONSTART`,
   and the job as data in the environment (the typed payload with its run-time budget = max_cost / dph_total × 0.95,
   and max_cost itself: the runner reads the instance's bill every ``bill_poll`` seconds and stops before it);
3. poll until running (give up and destroy on exited/offline/error messages or a start timeout), then
   upload local inputs through the :class:`~vibeml.backends.vast.transport.ArtifactTransport`, with a wheel
   of the running VibeML (:mod:`vibeml.remote_build`; by default, ``VIBEML_REMOTE_INSTALL=ship``) and the
   lock's pinned requirements (``inputs/requirements.txt``).

On the instance the onstart waits for those, installs the wheel (or the user's own build named by
``VIBEML_REMOTE_INSTALL``) with the pinned requirements, and execs the supervisor
(``python -m vibeml.remote``, Vast's part in :mod:`vibeml.backends.vast.remote`): the workflow's import
checks, then the trainer under the run-time budget, then it destroys its own instance.
``VIBEML_REMOTE_INSTALL=""``: VibeML is already on the image.

Any failure after the create destroys the instance. A ``handle.json`` is written beside the job before
the create and after it, so a launcher killed mid-launch is noticed by the next command (whose status
check destroys what the dead launcher rented).

Status follows the trainer's ``@@vibeml-event`` lines and the runner's ``@@vibeml-runner`` lines in the
instance log. When the runner reports the trainer finished, the adapter (or, after a stop, the last
checkpoint) is downloaded and the instance destroyed. ``cost_so_far`` is computed from the instance's
prices and the times seen, erring high, so the service's watchdog (cost ≥ max_cost → ``stop``) fires no
later than it should; the runner's own run-time budget stops the machine even when no client is left.

Spot: a preempted (outbid, stopped) bid instance is re-bid at the new ``min_bid`` (up to
``max_rebid_factor`` × the first bid; the machine's run-time budget is computed at that ceiling, so a
re-bid never breaks the cap). When it runs again the runner restarts and the trainer resumes from its
last checkpoint. A stopped instance that does not run again within ``spot_wait`` is destroyed (storage is
billed while stopped) and the job reported stopped.

Late landings: a create whose answer was lost may still land later (after the client's retry rented
another instance, after that one was destroyed and its offer freed, after the launch gave up, or after the
launcher was killed). Every try of a launch uses the job's one label, and the intent recorded before it
stays open for ``landing_grace`` seconds: :meth:`VastBackend.sweep` (in a background thread of the
launching process, and at the start of the next command that tracks jobs: status, list, reconcile,
cleanup) destroys every instance under an open intent's label that is not the job's own instance, or any
instance under it once the job is over, and records it in the store (``launch_strays``). Intents are
closed when settled: grace passed, nothing left under the label.

Ownership: ``cleanup``/reconcile destroy only instances whose label matches a recorded intent of this
installation (or, for labels of the old ``vibeml-<job_id>`` form, a job of this store that used it) and
whose job is terminal or gone. Everything else on the account — no label, the SDK's or a user's own,
another VibeML home's — is listed with its price and left alone.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from vibeml.backends.base import (
    HANDLE_FILENAME,
    Backend,
    Capabilities,
    Capability,
    LaunchChoice,
    write_handle_file,
)
from vibeml.backends.vast.offers import RankedOffer, offer_filters, offer_query, rank_offers
from vibeml.backends.vast.options import VastOptions
from vibeml.backends.vast.progress import JobState, RunInfo
from vibeml.backends.vast.remote import ONSTART, REQUIREMENTS_FILE
from vibeml.backends.vast.status import FAILED_MSG, LOG_FILENAME, VastJobMonitor, _instance_id, quiet
from vibeml.backends.vast.transport import ArtifactTransport, SSHTransport
from vibeml.catalog.gpus import GPUS
from vibeml.catalog.prices import PriceQuote, quotes_from_vast_offers
from vibeml.exceptions import (
    BackendError,
    BudgetExceededError,
    ConfigurationError,
    JobNotFoundError,
    ResourceError,
    VibeMLError,
)
from vibeml.jobs.store import JobStore, utcnow
from vibeml.models import JobProgress, JobRecord, JobStatus, TrainingRequest, VastHandle, VastHandleData, load_handle
from vibeml.processes import process_alive, start_time
from vibeml.remote.payload import PAYLOAD_ENV, RemoteBudget, RemoteJob, encode_payload
from vibeml.remote.supervisor import INPUTS_MARKER, STOP_MARKER
from vibeml.remote_build import ShippedWheel, is_ship, ship_wheel
from vibeml.settings import Settings
from vibeml.trainer.config import TrainerConfig
from vibeml.trainer.events import ECHO_PREFIX
from vibeml.vast import VastAI, VastAmbiguousCreateError, VastAPIError, VastNotFoundError
from vibeml.vast._http import default_key_files
from vibeml.workflows.registry import TrainingProgram

__all__ = ["LABEL_PREFIX", "VastBackend"]

logger = logging.getLogger(__name__)

LABEL_PREFIX = "vibeml-"
#: ``vibeml-<installation id>-<job id>``: the label of every instance this backend creates.
_OWNED_LABEL = re.compile(r"^vibeml-([0-9a-f]{12})-(.+)$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
#: Jobs this process is launching right now (any backend object): the sweep leaves their labels to the launch.
_LAUNCHING: set[str] = set()
_LAUNCHING_LOCK = threading.Lock()


def _is_marker(line: str) -> bool:
    return ECHO_PREFIX in line or "@@vibeml-runner " in line


class VastBackend(VastJobMonitor, Backend[VastHandle]):
    """Vast.ai marketplace GPUs under a hard budget cap.

    Args:
        settings: VibeML settings (``remote_install``, ``home``, the credentials).
        options: Backend options (URL, image, floors, timings); ``settings.vast`` when omitted.
        transport: How files reach the instance; SSH with VibeML's key when omitted.
        clock: Unix time for billing figures (a seam for tests with a fast billing clock).
        sleep: Waits between polls.
        client: A ready :class:`~vibeml.vast.VastAI` (default: built on first use from the settings, the
            ``VAST_API_KEY`` of the settings, the credential store or Vast's own key files).
        store: The job store that records create intents and this installation's id (default: the one
            at ``settings.db_path``, the service's).
    """

    name: ClassVar[str] = "vast"
    description: ClassVar[str] = "Vast.ai marketplace GPUs: the cheapest offer that fits, under a hard budget cap."
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=Capability(supported=True, reason="interruptible bids; a preempted job resumes from its checkpoint"),
        multi_gpu=Capability(supported=True, reason="torchrun: one trainer process per GPU of the rented machine"),
        multi_node=Capability(supported=False, reason="a Vast instance is one machine"),
        artifacts=Capability(supported=True, reason="copied back over SSH before the instance is destroyed"),
        gpu_selection=Capability(supported=True),
        budget_cap=Capability(supported=True, reason="run-time budget on the machine + cost watchdog"),
        free=False,
    )
    clouds: ClassVar[tuple[str, ...] | None] = ("vast",)
    handle_type: ClassVar[type[VastHandle]] = VastHandle

    def __init__(
        self,
        settings: Settings,
        *,
        options: VastOptions | None = None,
        transport: ArtifactTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = time.sleep,
        client: VastAI | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._owned_orphans: set[str] = set()
        self.options = options or settings.vast
        self.transport = transport or SSHTransport(settings.ssh_dir, user=self.options.ssh_user)
        self._clock = clock
        self._sleep = sleep
        self._vast = client
        self._lock = threading.Lock()
        self._last_log: dict[str, str] = {}
        self._sweep_lock = threading.Lock()
        self._sweeper_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._sweep_stop = threading.Event()

    # ------------------------------------------------------------------------------ client

    def client(self) -> VastAI:
        """The shared Vast client (raises ``CredentialError`` with what to do when no key is set)."""
        with self._lock:
            if self._vast is None:
                o = self.options
                self._vast = VastAI.from_settings(
                    self.settings,
                    server_url=o.url,
                    retry=o.retry,
                    quiet=True,
                    timeout=o.http_timeout,
                    create_lookup_grace=o.create_lookup_grace,
                    key_files=default_key_files(o.config_home),
                )
            return self._vast

    def store(self) -> JobStore:
        """The job store (opened on first use: estimates never touch it)."""
        with self._lock:
            if self._store is None:
                self._store = JobStore(self.settings.db_path)
            return self._store

    def label_for(self, job_id: str) -> str:
        """The label this installation gives ``job_id``'s instance."""
        return f"{LABEL_PREFIX}{self.store().installation_id()}-{job_id}"

    def check(self, request: TrainingRequest) -> None:
        super().check(request)
        self.client()  # no key → a CredentialError now, before a job record exists

    def live_quotes(self, request: TrainingRequest) -> list[PriceQuote] | None:
        """Current offers (on-demand, plus bids for spot requests) as per-GPU quotes; None when unavailable."""
        o = self.options
        try:
            from vibeml.catalog.gpus import resolve_gpu

            vast = self.client()
            gpu = resolve_gpu(request.gpu_type).name if request.gpu_type else None
            filters = offer_filters(
                gpu=gpu,
                gpu_count=request.gpu_count,
                min_gpu_ram_gb=None,
                min_reliability=o.min_reliability,
                min_cuda=o.min_cuda,
                min_disk_gb=None,
            )
            quotes: list[PriceQuote] = []
            for kind in ("on-demand", "bid") if request.use_spot else ("on-demand",):
                offers = vast.search_offers(offer_query(filters), type=kind, order="dph_total", limit=o.search_limit)
                quotes += quotes_from_vast_offers(offers, spot=kind == "bid")
            return quotes or None
        except VibeMLError as exc:
            logger.warning("live Vast.ai prices unavailable (%s); planning with the price table", exc.message)
            return None

    # ------------------------------------------------------------------------------ launch

    def _disk_gb(self, choice: LaunchChoice, inputs: list[tuple[str, Path, str]]) -> int:
        size = 0
        for _, path, _ in inputs:
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            size += sum(f.stat().st_size for f in files)
        return max(8, math.ceil(choice.disk_gb + size / 1e9))

    @staticmethod
    def _inputs(config: TrainerConfig) -> list[tuple[str, Path, str]]:
        """Local model/dataset paths to upload: (config field, local path, remote path under the job dir)."""
        out: list[tuple[str, Path, str]] = []
        model, data = Path(config.model), Path(config.dataset)
        if model.is_absolute() and model.exists():
            out.append(("model", model, "inputs/model"))
        if data.is_absolute() and data.exists():
            suffix = data.suffix if data.is_file() and _SUFFIX.match(data.suffix) else ""
            out.append(("dataset", data, f"inputs/dataset{suffix}"))
        resume = Path(config.resume_from_checkpoint) if config.resume_from_checkpoint else None
        if resume is not None and resume.is_absolute() and resume.is_dir():  # `vibeml resume` of a local job
            out.append(("resume_from_checkpoint", resume, f"inputs/{resume.name}"))
        held = Path(config.eval_dataset) if config.eval_dataset else None
        if held is not None and held.is_absolute() and held.exists():
            suffix = held.suffix if held.is_file() and _SUFFIX.match(held.suffix) else ""
            out.append(("eval_dataset", held, f"inputs/eval_dataset{suffix}"))
        return out

    def _offers(self, vast: VastAI, choice: LaunchChoice, disk: int) -> list[RankedOffer]:
        o = self.options
        gpu = choice.gpu_type
        mem = choice.required_memory_gib

        def search(gpu_filter: str | None) -> list[dict[str, Any]]:
            filters = offer_filters(
                gpu=gpu_filter,
                gpu_count=choice.gpu_count,
                min_gpu_ram_gb=mem,
                min_reliability=o.min_reliability,
                min_cuda=o.min_cuda,
                min_disk_gb=disk,
            )
            return vast.search_offers(
                offer_query(filters),
                type="bid" if choice.use_spot else "on-demand",
                order="dph_total",
                limit=o.search_limit,
                storage=disk,
            )

        spec = GPUS.get(gpu or "")
        kwargs: dict[str, Any] = dict(
            gpu_count=choice.gpu_count,
            estimated_hours=choice.estimated_hours,
            min_gpu_ram_mb=(mem or 0) * 1024,
            min_reliability=o.min_reliability,
            min_cuda=o.min_cuda,
            disk_gb=disk,
            spot=choice.use_spot,
            bid_margin=o.bid_margin,
            reference_tflops=spec.bf16_tflops * choice.gpu_count if spec else None,
            top=None,
        )
        ranked = rank_offers(search(gpu), gpu=gpu, **kwargs)
        if not ranked and gpu:
            # The plan may name a table price with no live offer behind it: take any GPU that fits.
            ranked = rank_offers(search(None), gpu=None, **kwargs)
        if not ranked:
            raise ResourceError(
                f"no Vast.ai offer fits the job ({choice.gpu_count}x {gpu or 'GPU'}, "
                f"{mem or 0:.1f} GiB, {disk} GB disk, {'bid' if choice.use_spot else 'on-demand'})",
                {"gpu": gpu, "disk_gb": disk, "min_reliability": o.min_reliability, "min_cuda": o.min_cuda},
                "Try again later, allow --spot, or lower the memory need (smaller batch or sequence length).",
            )
        if choice.max_cost is not None:
            within = [r for r in ranked if r.total_cost <= choice.max_cost]
            if not within:
                best = ranked[0]
                raise BudgetExceededError(
                    f"at current Vast.ai prices the job would cost ${best.total_cost:.4f}, over the "
                    f"${choice.max_cost:.4f} cap",
                    best.total_cost,
                    choice.max_cost,
                    {"offer_id": best.id},
                )
            ranked = within
        return ranked

    def _budget_seconds(self, choice: LaunchChoice, pick: RankedOffer) -> float:
        """Run time the machine may bill: max_cost / price (for bids: at the highest re-bid) × safety."""
        price = pick.price_per_hour
        if pick.bid is not None:
            price += pick.bid * (self.options.max_rebid_factor - 1.0)
        if choice.max_cost is not None:
            return choice.max_cost / price * 3600.0 * self.options.cap_safety
        if choice.max_runtime_seconds is not None:
            return choice.max_runtime_seconds * self.options.cap_safety
        raise ConfigurationError(
            "a Vast launch needs a budget cap (max_cost)", recovery_suggestion="Add --max-cost USD."
        )

    @staticmethod
    def _payload(program: TrainingProgram, inputs: list[tuple[str, Path, str]], setup_for: str = "vast") -> RemoteJob:
        """The job as data: trainer module + config (paths relative to the job dir), env, inputs, and the
        workflow's fixed setup steps for ``setup_for`` (``"local"`` = checks only, when VibeML and the
        training packages are already on the image). The budget is added per offer (:meth:`_env`)."""
        setup = dict(getattr(program, "setup_commands", None) or {}).get(setup_for, ())
        config = program.config.model_dump(mode="json")
        config.update(output_dir="output", checkpoint_dir="checkpoints", events_path="events.jsonl")
        relative = ["output_dir", "checkpoint_dir", "events_path"]
        for field, _, remote in inputs:
            config[field] = remote
            relative.append(field)
        return RemoteJob(
            provider="vast",
            job_id=program.config.job_id,
            module=program.module,
            config=config,
            relative_fields=tuple(relative),
            env=dict(program.env),
            inputs=tuple(r for _, _, r in inputs),
            setup=tuple(str(c) for c in setup),
            requirements=tuple(str(r) for r in program.requirements),
            gpus_per_node=program.nproc_per_node,  # one trainer process per GPU (torchrun when > 1)
        )

    def _shipped(self) -> ShippedWheel | None:
        """The wheel of the running VibeML when ``VIBEML_REMOTE_INSTALL`` asks for it (the default)."""
        return ship_wheel(self.settings.cache_dir) if is_ship(self.settings.remote_install) else None

    def _env(
        self,
        vast: VastAI,
        job: RemoteJob,
        budget_s: float,
        secrets: dict[str, str] | None = None,
        wheel: ShippedWheel | None = None,
        max_cost: float | None = None,
    ) -> dict[str, str]:
        """The instance's environment: the payload with this offer's budget (and, with a cap, the cap: the
        supervisor also reads the instance's bill and stops before it), and what the onstart's shell reads.
        Secrets (HF_TOKEN) ride as their own variables, outside the payload, so the client masks them in
        --explain and in every instance listing. What the onstart installs: ``VIBEML_WHEEL`` (the shipped
        wheel, under the job dir) or ``VIBEML_INSTALL`` (the user's own build)."""
        o = self.options
        budget = RemoteBudget(
            max_runtime_seconds=round(budget_s, 1),
            stop_grace_seconds=o.term_grace,
            reserve_seconds=o.destroy_reserve,
            max_cost_usd=max_cost if max_cost else None,
            bill_poll_seconds=o.bill_poll,
            linger_seconds=o.linger,
            input_wait_seconds=o.input_wait,
        )
        return {
            **(secrets or {}),
            PAYLOAD_ENV: encode_payload(job.model_copy(update={"budget": budget})),
            "VIBEML_WHEEL": f"inputs/{wheel.filename}" if wheel else "",
            "VIBEML_INSTALL": "" if wheel else self.settings.remote_install.strip(),
            "VIBEML_REMOTE_PYTHON": o.remote_python,
            "VIBEML_REMOTE_DIR": o.remote_dir,
            "VIBEML_INPUT_WAIT": f"{o.input_wait:.1f}",  # the onstart's shell reads the part before the dot
            "VIBEML_VAST_API": vast.server_url,
            "VIBEML_LOG_MIRROR": o.log_mirror,
            "VIBEML_ECHO_EVENTS": "1",
            "PYTHONUNBUFFERED": "1",
        }

    @staticmethod
    def _write_handle(job_id: str, job_dir: Path, data: VastHandleData) -> VastHandle:
        handle = VastHandle(
            job_id=job_id,
            job_dir=str(job_dir),
            data=data,
            backend_job_id=str(data.instance_id or data.label),
        )
        write_handle_file(handle)
        return handle

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> VastHandle:
        with _LAUNCHING_LOCK:  # the sweep leaves this job's label to this launch until it returns
            _LAUNCHING.add(job_id)
        try:
            return self._launch(program, job_id, job_dir, choice)
        finally:
            with _LAUNCHING_LOCK:
                _LAUNCHING.discard(job_id)
            self.start_sweeper()  # a create that timed out may still land: watch the label for a while

    def _launch(self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None) -> VastHandle:
        if choice is None:
            raise ConfigurationError(
                "the vast backend needs the planner's choice (GPU, price, budget)",
                recovery_suggestion="Launch through VibeML (vibeml launch --backend vast).",
            )
        if choice.num_nodes > 1:
            raise ConfigurationError(
                f"the plan needs {choice.num_nodes} machines; a Vast.ai job runs on one machine",
                {"gpu_count": choice.gpu_count, "num_nodes": choice.num_nodes},
                "Choose an offer with enough GPUs on one machine, or --backend skypilot for several nodes.",
            )
        if choice.gpu_count != program.nproc_per_node or (choice.gpu_count > 1 and program.config.strategy == "single"):
            raise ConfigurationError(
                f"the plan rents {choice.gpu_count} GPUs but the program runs {program.nproc_per_node} trainer "
                f"process(es) with strategy {program.config.strategy!r}",
                {"gpu_count": choice.gpu_count, "processes": program.nproc_per_node},
                "Launch through VibeML (vibeml launch), which renders one process per GPU of the plan.",
            )
        job_dir.mkdir(parents=True, exist_ok=True)
        vast = self.client()
        inputs = self._inputs(program.config)
        disk = self._disk_gb(choice, inputs)
        ranked = self._offers(vast, choice, disk)
        install = self.settings.remote_install.strip()
        wheel = self._shipped()  # built (or taken from the cache) before anything is rented
        payload = self._payload(program, inputs, "vast" if install else "local")
        store = self.store()
        label = self.label_for(job_id)
        pid = os.getpid()
        data = VastHandleData(
            label=label,
            launched=False,
            launcher_pid=pid,
            launcher_start=start_time(pid),
            remote_dir=self.options.remote_dir,
            output_dir=program.config.output_dir,
            checkpoint_dir=program.config.checkpoint_dir,
            max_cost=choice.max_cost,
            disk_gb=disk,
        )
        self._write_handle(job_id, job_dir, data)  # before the create: a killed launcher leaves the label
        last: VastAPIError | None = None
        for pick in ranked[:3]:
            budget_s = self._budget_seconds(choice, pick)
            created_at = self._clock()
            intent = store.record_intent(self.name, job_id, label, pick.id)  # before any paid call
            try:
                env = self._env(vast, payload, budget_s, program.secret_env(), wheel, choice.max_cost)
                res = vast.create_instance(
                    pick.id,
                    image=self.options.image,
                    disk=disk,
                    env=env,
                    onstart_cmd=ONSTART,
                    label=label,
                    price=pick.bid,
                    runtype="ssh",
                )
            except VastAmbiguousCreateError as exc:
                cleaned, _ = self._destroy_strays(vast, store, job_id, label)
                raise BackendError(
                    f"renting offer {pick.id} failed ambiguously: {exc.message}",
                    {"label": label, "offer_id": pick.id, "cleaned_up": cleaned},
                    "Nothing is left running" if cleaned else f"Run `vibeml vast cleanup` (label {label}).",
                ) from exc
            except VastNotFoundError as exc:  # rented by someone else meanwhile: the next offer
                last = exc
                continue
            iid = int(res["new_contract"])
            store.record_intent_resource(intent, iid)
            if res.get("recovered") or last is not None:  # an earlier try may have landed too: only one stays
                self._destroy_strays(vast, store, job_id, label, keep={iid})
            storage = float(pick.offer.get("storage_cost") or 0.0) * disk / 720.0
            gpu_rate = pick.bid if pick.bid is not None else max(0.0, pick.price_per_hour - storage)
            gpu_name = pick.offer.get("gpu_name")
            data = _evolve(
                data,
                instance_id=iid,
                offer_id=pick.id,
                created_at=created_at,
                storage_rate=storage,
                gpu_rate=gpu_rate,
                bid=pick.bid,
                budget_seconds=round(budget_s, 1),
                gpu_name=str(gpu_name) if gpu_name is not None else None,
                price_per_hour=round(pick.price_per_hour, 6),
            )
            break
        else:
            raise ResourceError(
                "every matching Vast.ai offer was taken before it could be rented",
                {"tried": [r.id for r in ranked[:3]]},
                "Retry in a minute.",
            ) from last
        self._write_handle(job_id, job_dir, data)
        try:
            inst, running_from = self._wait_running(vast, iid)
            self.transport.prepare(vast, inst)
            for _, local, remote in inputs:
                self.transport.upload(inst, local, self._remote(data, remote))
            if wheel is not None:  # the running VibeML, never a name on a registry
                self.transport.upload(inst, wheel.path, self._remote(data, f"inputs/{wheel.filename}"))
            if install:  # installed by the onstart together with VibeML, in one resolve
                pins = "".join(f"{r}\n" for r in program.requirements)
                self.transport.put_text(inst, self._remote(data, REQUIREMENTS_FILE), pins)
            if inputs or install:
                self.transport.put_text(inst, self._remote(data, INPUTS_MARKER), "ok\n")
        except BaseException as exc:
            gone = self._destroy(vast, iid)
            state = JobState(job_dir)
            state.data.update(destroyed_at=self._clock() if gone else None, launch_failed=True)
            state.save()
            if isinstance(exc, VibeMLError):
                note = "the instance was destroyed" if gone else f"instance {iid} could NOT be destroyed"
                raise BackendError(
                    f"the Vast launch failed: {exc.message} ({note})",
                    {"instance_id": iid, **exc.context},
                    exc.recovery_suggestion if gone else f"Run `vibeml vast destroy {iid}` now.",
                ) from exc
            raise
        state = JobState(job_dir)
        state.data.update(
            segments=[[running_from, data.gpu_rate]],
            gpu_rate=data.gpu_rate,
            gpu_on=True,
            last_seen=self._clock(),
            running_seen=self._clock(),
        )
        state.save()
        return self._write_handle(job_id, job_dir, _evolve(data, launched=True, running_from=running_from))

    def _wait_running(self, vast: VastAI, iid: int) -> tuple[dict[str, Any], float]:
        """Poll until running; returns the instance and the last time it was seen not running."""
        o = self.options
        deadline = time.monotonic() + o.start_timeout
        last_not_running = self._clock()
        while True:
            asked = self._clock()
            try:
                inst = vast.show_instance(iid)
            except VastNotFoundError as exc:
                raise BackendError(f"instance {iid} disappeared while starting", {"instance_id": iid}) from exc
            except VastAPIError:
                if time.monotonic() >= deadline:
                    raise
                self._sleep(o.poll_interval)
                continue
            status, msg = inst.get("actual_status"), str(inst.get("status_msg") or "")
            if status == "running":
                return inst, last_not_running
            if status in ("exited", "offline", "stopped") or FAILED_MSG.search(msg):
                raise BackendError(
                    f"instance {iid} did not start: it is {status} ({msg or 'no message'})",
                    {"instance_id": iid, "status": status},
                    "Retry: VibeML picks another offer; add --spot/--on-demand to widen the market.",
                )
            last_not_running = asked
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"instance {iid} did not start within {o.start_timeout:g} s (still {status})",
                    {"instance_id": iid, "status": status},
                    "Retry; this host is slow to start.",
                )
            self._sleep(o.poll_interval)

    # ------------------------------------------------------------------------------ logs / stop

    def _saved_log(self, handle: VastHandle) -> list[str]:
        try:
            text = (Path(handle.job_dir) / LOG_FILENAME).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if not _is_marker(line)]

    def _log_lines(self, handle: VastHandle) -> list[str] | None:
        iid = handle.data.instance_id
        if JobState(Path(handle.job_dir)).final is not None or iid is None:
            return self._saved_log(handle)
        try:
            text = self.client().logs(
                iid,
                tail=self.options.logs_tail,
                timeout=self.options.logs_timeout,
                poll_interval=self.options.logs_poll,
            )
        except VastNotFoundError:
            return self._saved_log(handle)
        except VibeMLError:
            return None
        self._last_log[handle.job_id] = text
        return [line for line in text.splitlines() if not _is_marker(line)]

    def logs(self, handle: VastHandle, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        handle = self.own(handle)
        lines = self._log_lines(handle) or []
        yield from lines[-tail:] if tail else lines
        while follow:
            self._sleep(max(0.05, min(self.options.poll_interval, 5.0)))
            done = self.status(handle).status.is_terminal
            new = self._saved_log(handle) if done else self._log_lines(handle)
            if new is not None:
                yield from _new_lines(lines, new)
                lines = new
            if done:
                return

    def stop(self, handle: VastHandle, grace_seconds: float = 30.0) -> None:
        """Stop the job: with a grace, ask the trainer to checkpoint and copy the checkpoint back; then destroy.

        Raises:
            BackendError: The instance could not be destroyed (the job stays open; retry or use
                ``vibeml vast destroy``).
        """
        handle = self.own(handle)
        state = JobState(Path(handle.job_dir))
        if state.final is not None:
            return
        vast = self.client()
        if not handle.data.launched:
            if not self._destroy_label(vast, handle.data.label, handle.data.instance_id):
                raise BackendError(
                    f"could not destroy the instance labelled {handle.data.label}",
                    recovery_suggestion="Run `vibeml vast cleanup`.",
                )
            self._done(handle, state, JobProgress(status=JobStatus.STOPPED, error="stopped by request"))
            return
        if grace_seconds > 0:
            with quiet():
                self._graceful(vast, handle, state, grace_seconds)
        iid = _instance_id(handle)
        if not self._destroy(vast, iid):
            raise BackendError(
                f"could not destroy instance {iid}",
                {"instance_id": iid},
                f"Retry `vibeml stop`, or run `vibeml vast destroy {iid}`.",
            )
        info = RunInfo.from_records(state.records())
        progress = info.progress(alive=False).model_copy(
            update={"status": JobStatus.STOPPED, "error": "stopped by request"}
        )
        if state.data.get("artifacts"):
            progress = progress.model_copy(
                update={"status": JobStatus.COMPLETED, "error": None, "output_dir": state.data["artifacts"]}
            )
        self._done(handle, state, progress)

    def _graceful(self, vast: VastAI, handle: VastHandle, state: JobState, grace: float) -> None:
        inst = vast.show_instance(_instance_id(handle))
        if inst.get("actual_status") != "running":
            return
        self.transport.put_text(inst, self._remote(handle.data, STOP_MARKER), "stop\n")
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._read_log(vast, handle, state)
            info = RunInfo.from_records(state.records())
            if info.finished:
                if info.outcome in ("done", "stopped"):
                    self._collect(handle, state, inst, info)
                return
            self._sleep(max(0.05, min(self.options.poll_interval, 2.0)))

    # ------------------------------------------------------------------------------ artifacts

    def fetch_artifacts(self, handle: VastHandle, dest: Path | None = None) -> Path:
        handle = self.own(handle)
        state = JobState(Path(handle.job_dir))
        if not state.data.get("artifacts") and state.final is None:
            self.status(handle)  # a finished job's adapter is brought back by the status check
            state = JobState(Path(handle.job_dir))
        src = Path(state.data["artifacts"]) if state.data.get("artifacts") else None
        if src is None or not src.exists():
            raise BackendError(
                f"job {handle.job_id} has no adapter here yet",
                {"job_id": handle.job_id},
                "The adapter comes back when the job completes; check `vibeml status JOB`.",
            )
        if dest is None or Path(dest).resolve() == src.resolve():
            return src
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return Path(dest)

    # ------------------------------------------------------------------------------ reconcile

    def orphans(self, live_job_ids: set[str]) -> list[dict[str, Any]]:
        """Every instance on the account that no live job of this installation uses, each with ``owned``:
        True only when a recorded intent (or, for an old-format label, a job) of this store matches its
        label and that job is terminal or gone; those alone may be destroyed."""
        store = self.store()
        mine = store.installation_id()
        intents: dict[str, str] = {i["label"]: i["job_id"] for i in store.intents(self.name)}
        out: list[dict[str, Any]] = []
        owned: set[str] = set()
        for inst in self.client().show_instances():
            iid, label = str(inst.get("id")), str(inst.get("label") or "")
            item: dict[str, Any] = {
                "id": iid,
                "label": label,
                "status": inst.get("actual_status"),
                "dph_total": inst.get("dph_total"),
                "owned": False,
            }
            job_id, reason = self._owner(store, mine, intents, label)
            if job_id is not None:
                if job_id in live_job_ids or not self._job_over(store, job_id):
                    continue  # ours and in use
                item.update(job_id=job_id, owned=True, reason=reason)
                owned.add(iid)
            else:
                item["reason"] = reason
            out.append(item)
        self._owned_orphans = owned
        return out

    @staticmethod
    def _owner(store: JobStore, mine: str, intents: dict[str, str], label: str) -> tuple[str | None, str]:
        """(the job of this installation that owns ``label``, or None; why)."""
        left = " — left alone"
        if not label:
            return None, "no label: not VibeML's" + left
        if label in intents:
            return intents[label], "VibeML's (a recorded launch of this installation) and its job is over"
        m = _OWNED_LABEL.match(label)
        if m is not None:
            if m.group(1) != mine:
                return None, f"another VibeML installation's (id {m.group(1)})" + left
            return None, "this installation's label, but no recorded launch matches it" + left
        if label.startswith(LABEL_PREFIX):  # the old vibeml-<job id> form: ours only if our job used it
            job_id = label[len(LABEL_PREFIX) :]
            try:
                record = store.get(job_id)
            except JobNotFoundError:
                record = None
            handle_label = getattr(getattr(record.handle, "data", None), "label", None) if record else None
            if record is not None and record.backend == "vast" and handle_label == label:
                return job_id, "VibeML's (a job of this installation) and its job is over"
            return None, "labelled vibeml-, but no job or launch of this installation matches it" + left
        return None, "not VibeML's" + left

    @staticmethod
    def _job_over(store: JobStore, job_id: str) -> bool:
        try:
            return store.get(job_id).status.is_terminal
        except JobNotFoundError:
            return True

    def destroy_orphans(self, ids: list[str]) -> list[str]:
        """Destroy those of ``ids`` that the last :meth:`orphans` found owned; never anything else."""
        vast = self.client()
        return [i for i in ids if i in self._owned_orphans and i.isdigit() and self._destroy(vast, int(i))]

    # ------------------------------------------------------------------------------ late landings

    def _destroy_strays(
        self, vast: VastAI, store: JobStore, job_id: str, label: str, keep: set[int] | frozenset[int] = frozenset()
    ) -> tuple[bool, list[int]]:
        """Destroy every instance under ``label`` but ``keep``, each recorded; (nothing left?, ids destroyed)."""
        try:
            found = [int(i["id"]) for i in vast.show_instances() if i.get("label") == label and i.get("id")]
        except VastAPIError as exc:
            logger.warning("could not list instances to find strays under %s: %s", label, exc.message)
            return False, []
        return self._destroy_recorded(vast, store, job_id, label, [i for i in found if i not in keep])

    def _destroy_recorded(
        self, vast: VastAI, store: JobStore, job_id: str, label: str, ids: list[int]
    ) -> tuple[bool, list[int]]:
        gone: list[int] = []
        for iid in ids:
            done = self._destroy(vast, iid)
            store.record_stray(self.name, job_id, label, iid, destroyed=done)
            if done:
                gone.append(iid)
                logger.warning("destroyed instance %s: a late or duplicate create under %s (%s)", iid, label, job_id)
            else:
                logger.warning("instance %s under %s (%s) could NOT be destroyed; retrying later", iid, label, job_id)
        return len(gone) == len(ids), gone

    def _current_handle(self, record: JobRecord) -> VastHandle | None:
        """The newest handle of a job: the launcher's ``handle.json`` (written at every step), else the store's."""
        stored = record.handle if isinstance(record.handle, VastHandle) else None
        job_dir = Path(stored.job_dir) if stored is not None else self.settings.jobs_dir / record.job_id
        try:
            loaded = load_handle((job_dir / HANDLE_FILENAME).read_text(encoding="utf-8"), where=str(job_dir))
        except (OSError, VibeMLError):
            return stored
        return loaded if isinstance(loaded, VastHandle) else stored

    def _sweep_keep(self, store: JobStore, job_id: str, label: str) -> set[int] | None:
        """Instances under the job's label the sweep must leave, or None: hands off (a launcher is still
        creating it and settles its own tries). A live job keeps only its instance; a finished (or
        unknown) job keeps the instances a create answered with, recorded on its intents: those are
        reconcile's orphans (listed; destroyed by ``vibeml vast cleanup``). Everything else is a stray."""
        with _LAUNCHING_LOCK:
            if job_id in _LAUNCHING:
                return None
        intents = [i for i in store.intents(self.name) if i["label"] == label]
        recorded = {int(i["resource_id"]) for i in intents if i["resource_id"]}
        try:
            record = store.get(job_id)
        except JobNotFoundError:  # the backend used without the service: no job record to go by
            o = self.options
            window = o.http_timeout * o.retry * 2 + o.create_lookup_grace + 5.0
            newest = intents[-1] if intents else None
            if newest is not None and not newest["resource_id"]:
                age = (utcnow() - datetime.fromisoformat(str(newest["created_at"]))).total_seconds()
                if age < window:
                    return None  # its create may still be on its way back to a live launcher
            return recorded
        if record.status.is_terminal:
            return recorded
        handle = self._current_handle(record)
        if handle is None:
            return None  # the launcher writes its handle before its first intent: not this job's create yet
        d = handle.data
        if d.launched:
            return {d.instance_id} if d.instance_id else set()
        pid = d.launcher_pid
        if pid and pid != os.getpid() and process_alive(pid, d.launcher_start):
            return None
        return set()  # the launch ended without an instance (it failed, or its launcher was killed)

    def _settle_unlaunched(self, handle: VastHandle, met: list[int]) -> str:
        """Why a launch whose launcher is gone did not complete, truthfully: an intent recorded means a
        create may have been sent (and may still land: the sweep watches its label); ``met`` were under
        the label now and are destroyed (recorded as strays)."""
        d, store = handle.data, self.store()
        for iid in met:
            store.record_stray(self.name, handle.job_id, d.label, iid, destroyed=True)
        if d.instance_id:
            return f"the launcher stopped after renting instance {d.instance_id}; the instance was destroyed"
        rented = sorted({*map(str, met), *(str(s["resource_id"]) for s in store.strays(self.name, handle.job_id))})
        if rented:
            return (
                f"the launcher was killed during a create; it had rented instance(s) {', '.join(rented)}, which "
                "VibeML destroyed; VibeML keeps watching the label for a late one"
            )
        if any(i["job_id"] == handle.job_id for i in store.intents(self.name)):
            return (
                "the launcher was killed during a create; VibeML will find and destroy anything it rented "
                f"(label {d.label})"
            )
        return "the launcher stopped before renting anything"

    def sweep(self) -> list[dict[str, Any]]:
        """One pass over this installation's open create intents: every instance under an intent's label that
        is not the job's own instance (all of them once the job is over) is destroyed and recorded
        (:meth:`~vibeml.jobs.store.JobStore.record_stray`); an intent ``landing_grace`` seconds old with
        nothing left to destroy is closed. Returns the strays met: ``id``, ``label``, ``job_id``, ``destroyed``.

        Raises:
            VastAPIError: The instance list could not be read (nothing was closed).
        """
        with self._sweep_lock:
            store = self.store()
            pending = store.open_intents(self.name)
            if not pending:
                return []
            vast = self.client()
            by_label: dict[str, list[int]] = {}
            for inst in vast.show_instances():
                if inst.get("label") and inst.get("id"):
                    by_label.setdefault(str(inst["label"]), []).append(int(inst["id"]))
            groups: dict[str, list[dict[str, Any]]] = {}
            for intent in pending:
                groups.setdefault(str(intent["label"]), []).append(intent)
            out: list[dict[str, Any]] = []
            now = utcnow()
            for label, intents in groups.items():
                job_id = str(intents[-1]["job_id"])
                keep = self._sweep_keep(store, job_id, label)
                if keep is None:
                    continue
                strays = [i for i in by_label.get(label, []) if i not in keep]
                settled, gone = self._destroy_recorded(vast, store, job_id, label, strays)
                out += [{"id": i, "label": label, "job_id": job_id, "destroyed": i in gone} for i in strays]
                newest = max(datetime.fromisoformat(str(i["created_at"])) for i in intents)
                if settled and (now - newest).total_seconds() >= self.options.landing_grace:
                    store.close_intents(self.name, label, "landing grace passed; nothing else under the label")
            return out

    def settle_launches(self) -> None:
        """One :meth:`sweep` now; while intents stay open the background sweep goes on (for as long as
        this process lives: the next command picks up whatever is still open)."""
        thread = self._sweeper
        if thread is not None and thread.is_alive():
            return  # this process's background sweep is on it
        self.sweep()
        if self.store().open_intents(self.name):
            self.start_sweeper()

    def start_sweeper(self) -> None:
        """Sweep in a daemon thread (every ``landing_grace`` / 20 s, 0.05–5 s) until no intent is open."""
        with self._sweeper_lock:
            if self._sweeper is not None and self._sweeper.is_alive():
                return
            self._sweep_stop.clear()
            self._sweeper = threading.Thread(target=self._sweep_loop, name="vibeml-vast-sweep", daemon=True)
            self._sweeper.start()

    def stop_sweeper(self, timeout: float = 5.0) -> None:
        """Stop the background sweep (the next command picks up what is still open)."""
        self._sweep_stop.set()
        thread = self._sweeper
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _sweep_loop(self) -> None:
        """Sweep until no intent is open, or (sweeps failing) until every open one is past its grace: the
        next command then picks them up."""
        every = max(0.05, min(5.0, self.options.landing_grace / 20))
        give_up = self.options.landing_grace + 3 * every + 1.0
        while not self._sweep_stop.wait(every):
            try:
                self.sweep()
            except VibeMLError as exc:
                logger.info("sweeping for late-landing instances failed (%s); trying again", exc.message)
            except Exception:  # a background thread must not die silently mid-grace
                logger.exception("sweeping for late-landing instances failed; trying again")
            with self._sweeper_lock:
                try:
                    left = self.store().open_intents(self.name)
                    now = utcnow()
                    young = [
                        i
                        for i in left
                        if (now - datetime.fromisoformat(str(i["created_at"]))).total_seconds() < give_up
                    ]
                except Exception:  # the store is gone (its home was removed): nothing to watch
                    left = young = []
                if not young:
                    self._sweeper = None
                    return

    # ------------------------------------------------------------------------------ CLI helpers

    def search(
        self, query: str = "", type: str = "on-demand", order: str = "dph_total", limit: int | None = 20
    ) -> list[dict[str, Any]]:
        """Offers for a query in Vast's language (``vibeml vast offers``)."""
        return self.client().search_offers(query, type=type, order=order, limit=limit)

    def instances(self) -> list[dict[str, Any]]:
        """Every instance on the account (``vibeml vast instances``)."""
        return self.client().show_instances()

    def destroy(self, instance_id: int) -> None:
        """Destroy one instance by id (``vibeml vast destroy``).

        Raises:
            VastNotFoundError: No such instance (or it is already gone).
        """
        self.client().destroy_instance(int(instance_id))


def _evolve(data: VastHandleData, **changes: Any) -> VastHandleData:
    """``data`` with ``changes``, validated (``model_copy(update=...)`` would skip the checks)."""
    return VastHandleData.model_validate({**data.model_dump(), **changes})


def _new_lines(old: list[str], new: list[str]) -> list[str]:
    """Lines of ``new`` after its overlap with the end of ``old`` (two tails of one growing log)."""
    for k in range(min(len(old), len(new)), 0, -1):
        if old[-k:] == new[:k]:
            return new[k:]
    return new
