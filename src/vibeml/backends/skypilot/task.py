"""SkyPilot task generation: a VibeML program and the planner's choice → ``sky.Task``.

Nothing here splices a user string into a shell script. ``SETUP_SCRIPT`` and ``RUN_SCRIPT`` are fixed
text, identical for every job; everything job-specific travels as DATA:

* the job (trainer module and JSON config, budget, state dir) as the remote supervisor's typed payload in
  ``VIBEML_JOB`` (:class:`~vibeml.remote.payload.RemoteJob`, plain JSON; SkyPilot exports env values
  ``shlex.quote``-d and the supervisor reads it from its environment);
* pip requirements in ``VIBEML_REQUIREMENTS`` (written to a requirements file, never a command line);
* local model/dataset paths as ``file_mounts`` (YAML data: local source → fixed remote name).

Layout on every node (the scripts ``cd "$HOME"``; trainer paths are relative to the job dir):
``vibeml-job/{config.json,requirements.txt,events.jsonl,inputs/,output/,checkpoints/,state/}``. With a
bucket (always for spot, which runs as a SkyPilot managed job and must survive preemption) the output,
checkpoints and budget state live on it instead, under ``/vibeml-store/<job_id>/`` (``MOUNT_CACHED``),
so a recovered job resumes from the same checkpoint directory.

Budget: each candidate's ``max_hourly_cost`` is its planned rate + 10 %, and the run-time limit is
``max_cost / (that cap × nodes)`` (or the choice's ``max_runtime_seconds`` when smaller), less the idle
window before autodown (the reserve). The supervisor on each node (:mod:`vibeml.remote`, the same program as
on Vast) counts the machine's boot once (provisioning and setup are billed; a machine up longer than the
whole budget was not started for this job, e.g. a reused cluster, and counts from now) and keeps its clock
on the bucket across recoveries; it stops the trainer with SIGTERM (checkpoint and stop) before the end and
SIGKILL after the grace. The trainer's own ``max_runtime_seconds`` is set within the same limit.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vibeml.backends.base import LaunchChoice
from vibeml.backends.skypilot.catalog import sky_accelerator_name
from vibeml.exceptions import ConfigurationError, ValidationError
from vibeml.models import TrainingRequest
from vibeml.remote.payload import PAYLOAD_ENV, RemoteBudget, RemoteJob, decode_payload, encode_payload
from vibeml.remote_build import is_ship, ship_wheel
from vibeml.settings import Settings
from vibeml.trainer.config import TrainerConfig
from vibeml.workflows.registry import TrainingProgram

__all__ = [
    "PAYLOAD_ENV",
    "REMOTE_JOB_DIR",
    "RUN_SCRIPT",
    "SETUP_SCRIPT",
    "STORE_MOUNT",
    "BudgetPlan",
    "ResourceSpec",
    "SkyOptions",
    "SkyTaskSpec",
    "StoreSpec",
    "budget_plan",
    "build_task_spec",
    "choice_from_flags",
    "export_header",
    "export_task_yaml",
    "import_sky",
    "payload_config",
    "sky_cluster_name",
]

REMOTE_JOB_DIR = "vibeml-job"
STORE_MOUNT = "/vibeml-store"
INSTALL_HINT = "pip install 'vibeml[sky]'"
#: Smallest disk we ask for: GPU images with CUDA and the pip cache need room before any model arrives.
MIN_DISK_GB = 100
#: A candidate may cost this much more per hour than planned (catalogues round differently).
PRICE_TOLERANCE = 0.10
MASTER_PORT = 29500

#: Installs VibeML (``$VIBEML_INSTALL``: by default the shipped wheel of the running build, mounted under
#: ``~/vibeml-pkg/``; or the user's own build) together with the workflow's pinned requirements
#: (``$VIBEML_REQUIREMENTS``, one per line, installed with ``-r``) in one resolve, with uv when the machine
#: has it, else pip. Fixed text.
SETUP_SCRIPT = """\
set -euo pipefail
cd "$HOME"
PY="${VIBEML_REMOTE_PYTHON:-python3}"
mkdir -p vibeml-job
printf '%s\\n' "${VIBEML_REQUIREMENTS:-}" > vibeml-job/requirements.txt
ARGS=()
if grep -q '[^[:space:]]' vibeml-job/requirements.txt; then ARGS+=(-r vibeml-job/requirements.txt); fi
if [ -n "${VIBEML_INSTALL:-}" ]; then ARGS+=("$VIBEML_INSTALL"); fi
if [ "${#ARGS[@]}" -gt 0 ]; then
  if command -v uv >/dev/null 2>&1; then
    uv pip install --quiet --python "$PY" "${ARGS[@]}"
  else
    "$PY" -m pip install --quiet "${ARGS[@]}"
  fi
fi
"$PY" -c 'import vibeml.trainer' && echo '[vibeml] setup done'
"""

#: Runs the remote supervisor (:mod:`vibeml.remote`, SkyPilot's part in
#: :mod:`vibeml.backends.skypilot.remote`) on every node: the typed payload in ``$VIBEML_JOB`` carries the
#: trainer's config and the budget; the supervisor keeps the budget clock and starts the trainer (one
#: process, or ``torch.distributed.run`` across SkyPilot's GPUs and nodes). Fixed text.
RUN_SCRIPT = """\
set -e
cd "$HOME"
mkdir -p vibeml-job
exec "${VIBEML_REMOTE_PYTHON:-python3}" -m vibeml.remote
"""

_CLUSTER_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\](), <>=!~;:'\"@/+*]*$")
_BUCKET = re.compile(r"^[a-z][a-z0-9]*://[A-Za-z0-9][A-Za-z0-9._\-/]*$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,12}$")
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_RESERVED_ENVS = frozenset(
    {
        PAYLOAD_ENV,
        "VIBEML_JOB_ID",
        "VIBEML_INSTALL",
        "VIBEML_REQUIREMENTS",
        "VIBEML_REMOTE_DIR",
        "VIBEML_ECHO_EVENTS",
        "VIBEML_REMOTE_PYTHON",
    }
)


def payload_config(envs: Mapping[str, str]) -> TrainerConfig:
    """The trainer's config inside a task's payload (``envs[PAYLOAD_ENV]``)."""
    return TrainerConfig.model_validate(decode_payload(envs[PAYLOAD_ENV]).config)


def import_sky() -> ModuleType:
    """``import sky``, or a ``ConfigurationError`` that names the install command."""
    try:
        return importlib.import_module("sky")
    except ImportError as exc:
        raise ConfigurationError(
            f"the skypilot backend needs SkyPilot, which is not installed ({exc})",
            {"backend": "skypilot", "install": INSTALL_HINT},
            f"Install it with: {INSTALL_HINT}",
        ) from exc


def sky_cluster_name(job_id: str) -> str:
    """The SkyPilot cluster / managed-job name for a job (lower-case letters, digits and '-')."""
    slug = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")
    name = f"vibeml-{slug}"[:40].rstrip("-")
    if not _CLUSTER_NAME.match(name):
        raise ConfigurationError(f"cannot derive a SkyPilot cluster name from job id {job_id!r}")
    return name


# ------------------------------------------------------------------------------------------ models


class SkyOptions(BaseModel):
    """How VibeML uses SkyPilot (resolved from the settings by the backend)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    install: str = Field(
        "",
        description="'ship' (the running build's wheel), a pip requirement, or a local wheel/dir to mount; "
        "'' = preinstalled.",
    )
    wheel_cache: Path | None = Field(None, description="Where the shipped wheel is built (the settings' cache dir).")
    bucket: str | None = Field(None, description="e.g. s3://my-bucket/vibeml: outputs and checkpoints go there.")
    stop_grace_seconds: int = Field(90, ge=5, le=3600)
    autodown_idle_minutes: int = Field(
        20, ge=1, le=1440, description="On-demand clusters: idle time before teardown (to fetch artifacts)."
    )
    remote_python: str | None = None
    managed: bool | None = Field(None, description="None: managed jobs for spot, clusters for on-demand.")

    @classmethod
    def from_settings(cls, settings: Settings) -> SkyOptions:
        """From VibeML's settings: the install spec, the stop grace and the ``skypilot`` section
        (``VIBEML_SKY_BUCKET``: bucket URL for outputs and checkpoints; ``VIBEML_SKY_MANAGED``: 1/0 forces
        managed jobs on or off)."""
        return cls(
            install=settings.remote_install,
            wheel_cache=settings.cache_dir,
            bucket=settings.skypilot.bucket,
            stop_grace_seconds=max(5, min(3600, int(settings.stop_grace_seconds) or 90)),
            managed=settings.skypilot.managed,
        )


class StoreSpec(BaseModel):
    """A bucket mounted at ``STORE_MOUNT``: the user's (``url``) or one SkyPilot creates (``name``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mount: str = STORE_MOUNT
    url: str | None = None
    name: str | None = None


class ResourceSpec(BaseModel):
    """One candidate machine (``sky.Resources`` kwargs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str | None = None
    region: str | None = None
    accelerator: str | None = None
    count: int = Field(1, ge=1)
    use_spot: bool = False
    disk_size: int = Field(MIN_DISK_GB, ge=1)
    max_hourly_cost: float | None = None
    autostop_idle_minutes: int | None = None
    hourly_rate: float = 0.0
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def infra(self) -> str | None:
        if not self.cloud:
            return None
        return f"{self.cloud}/{self.region}" if self.region else self.cloud

    def kwargs(self) -> dict[str, Any]:
        """Arguments for ``sky.Resources`` (verified against SkyPilot 0.14.1's signature)."""
        kw: dict[str, Any] = {"use_spot": self.use_spot, "disk_size": self.disk_size}
        if self.infra:
            kw["infra"] = self.infra
        if self.accelerator:
            kw["accelerators"] = f"{self.accelerator}:{self.count}"
        if self.max_hourly_cost:
            kw["max_hourly_cost"] = round(self.max_hourly_cost, 4)
        if self.autostop_idle_minutes is not None:
            # jobs_and_ssh (SkyPilot's default, spelt out): the idle timer waits for the client's rsync.
            kw["autostop"] = {"idle_minutes": self.autostop_idle_minutes, "down": True, "wait_for": "jobs_and_ssh"}
        if self.labels:
            kw["labels"] = dict(self.labels)
        return kw


class SkyTaskSpec(BaseModel):
    """Everything that becomes a ``sky.Task``, plus what the backend needs to track it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    name: str
    setup: str = SETUP_SCRIPT
    run: str = RUN_SCRIPT
    envs: dict[str, str]
    file_mounts: dict[str, str] = Field(default_factory=dict)
    store: StoreSpec | None = None
    num_nodes: int = Field(1, ge=1)
    resources: tuple[ResourceSpec, ...]
    managed: bool
    runtime_limit_seconds: int | None = None
    reserve_seconds: int = 0
    remote_output_dir: str
    remote_checkpoint_dir: str
    config: TrainerConfig

    @property
    def hourly_cap(self) -> float:
        """Worst-case $/h for the whole job (all nodes), 0 when unknown."""
        caps = [r.max_hourly_cost or r.hourly_rate for r in self.resources]
        return max(caps, default=0.0) * self.num_nodes

    @property
    def store_output_url(self) -> str | None:
        """Where the output lands on the user's bucket (None for SkyPilot-named buckets or no bucket)."""
        if self.store is None or self.store.url is None:
            return None
        return f"{self.store.url}/{self.job_id}/output"

    def to_task(self, sky: ModuleType | None = None, secrets: dict[str, str] | None = None) -> Any:
        """Build the real ``sky.Task`` (imports SkyPilot).

        ``secrets`` (HF_TOKEN) go to SkyPilot's ``secrets``, which it keeps out of its logs and dashboard;
        the YAML this spec writes (:meth:`to_yaml`) never holds them.
        """
        sky = sky or import_sky()
        task = sky.Task(
            name=self.name,
            setup=self.setup,
            run=self.run,
            envs=dict(self.envs),
            secrets=dict(secrets) if secrets else None,
            num_nodes=self.num_nodes,
            file_mounts=dict(self.file_mounts) or None,
        )
        if self.store is not None:
            storage = sky.Storage(
                name=self.store.name,
                source=self.store.url,
                mode=sky.StorageMode.MOUNT_CACHED,
                persistent=True,
            )
            task.set_storage_mounts({self.store.mount: storage})
        resources = [sky.Resources(**r.kwargs()) for r in self.resources]
        task.set_resources(resources[0] if len(resources) == 1 else set(resources))
        return task

    def to_yaml_config(self, sky: ModuleType | None = None) -> dict[str, Any]:
        """The task as SkyPilot's YAML dict (``task.to_yaml_config()``)."""
        config: dict[str, Any] = self.to_task(sky).to_yaml_config()
        return config

    def to_yaml(self, sky: ModuleType | None = None) -> str:
        """YAML text that ``sky launch`` (or ``sky.Task.from_yaml_str``) accepts; scripts as ``|`` blocks."""
        import yaml

        class _Dumper(yaml.SafeDumper):
            pass

        def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
            style = "|" if "\n" in value and not any(line.endswith(" ") for line in value.split("\n")) else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        _Dumper.add_representer(str, _str)
        return str(yaml.dump(self.to_yaml_config(sky), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000))


# ------------------------------------------------------------------------------------------ budget


class BudgetPlan(BaseModel):
    """Per-candidate hourly caps (per node) and the job's wall-clock limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    caps: tuple[float | None, ...]
    runtime_limit_seconds: int | None
    reserve_seconds: int


def budget_plan(choice: LaunchChoice, managed: bool, autodown_idle_minutes: int) -> BudgetPlan:
    """Hourly caps (only with a budget) and the time limit that keep the job within ``choice.max_cost``.

    ``hourly_rate`` is read as the price of one node (all its GPUs); the limit assumes the most
    expensive allowed candidate, so whichever SkyPilot picks, cap × nodes × limit ≤ max_cost.
    """
    rates = [choice.hourly_rate, *(c.hourly_rate for c in choice.candidates)]
    # Without a budget SkyPilot's optimizer already picks the cheapest offer; a cap would only get in the way.
    caps = tuple(r * (1 + PRICE_TOLERANCE) if r > 0 and choice.max_cost else None for r in rates)
    limits: list[float] = []
    if choice.max_runtime_seconds:
        limits.append(choice.max_runtime_seconds)
    known = [c for c in caps if c is not None]
    if choice.max_cost and known and len(known) == len(caps):
        limits.append(choice.max_cost / (max(known) * max(1, choice.num_nodes)) * 3600.0)
    limit = math.floor(min(limits)) if limits else None
    reserve = 0 if managed else autodown_idle_minutes * 60
    return BudgetPlan(caps=caps, runtime_limit_seconds=limit, reserve_seconds=reserve)


def autodown_minutes(limit: int | None, preferred: int) -> int:
    """The idle window before autodown: the preferred one, but at most a tenth of the budget (≥ 2 min)."""
    if limit is None:
        return preferred
    return max(2, min(preferred, limit // 600))


# ----------------------------------------------------------------------------------------- builder


def _requirements(program: TrainingProgram) -> list[str]:
    reqs = [r.strip() for r in program.requirements if r.strip()]
    for r in reqs:
        if not _REQUIREMENT.match(r) or r.startswith("-"):
            raise ConfigurationError(
                f"workflow requirement {r!r} is not a plain pip requirement",
                {"workflow": program.workflow},
                "Workflows list requirements like 'peft>=0.17'; options and URLs are not allowed.",
            )
    if not any(re.match(r"^torch($|[^A-Za-z0-9_.-])", r) for r in reqs):
        reqs.insert(0, "torch")
    return reqs


def _bucket(url: str) -> str:
    url = url.strip().rstrip("/")
    if not _BUCKET.match(url) or ".." in url.split("/"):
        raise ConfigurationError(
            f"bucket {url!r} is not a bucket URL",
            {"bucket": url},
            "Give one like s3://my-bucket/vibeml or gs://my-bucket (letters, digits, '.', '_', '-', '/').",
        )
    return url


def _mount_inputs(config: TrainerConfig, mounts: dict[str, str]) -> dict[str, str]:
    """Local model/dataset paths → file mounts with fixed remote names; returns config updates (paths
    relative to the job dir)."""
    updates: dict[str, str] = {}
    model = Path(config.model).expanduser()
    if model.exists():
        mounts[f"~/{REMOTE_JOB_DIR}/inputs/model"] = str(model.resolve())
        updates["model"] = "inputs/model"
    data = Path(config.dataset).expanduser()
    if data.exists():
        suffix = data.suffix if data.is_file() and _SUFFIX.match(data.suffix) else ""
        mounts[f"~/{REMOTE_JOB_DIR}/inputs/dataset{suffix}"] = str(data.resolve())
        updates["dataset"] = f"inputs/dataset{suffix}"
    resume = Path(config.resume_from_checkpoint).expanduser() if config.resume_from_checkpoint else None
    if resume is not None and resume.is_dir():  # `vibeml resume` of a local job: the checkpoint goes along
        mounts[f"~/{REMOTE_JOB_DIR}/inputs/{resume.name}"] = str(resume.resolve())
        updates["resume_from_checkpoint"] = f"inputs/{resume.name}"
    held = Path(config.eval_dataset).expanduser() if config.eval_dataset else None
    if held is not None and held.exists():
        suffix = held.suffix if held.is_file() and _SUFFIX.match(held.suffix) else ""
        mounts[f"~/{REMOTE_JOB_DIR}/inputs/eval_dataset{suffix}"] = str(held.resolve())
        updates["eval_dataset"] = f"inputs/eval_dataset{suffix}"
    return updates


def _install(options: SkyOptions, mounts: dict[str, str]) -> str:
    """``$VIBEML_INSTALL``: the shipped wheel of the running VibeML (``ship``), a local wheel/source dir
    (both mounted beside the job), or a pip requirement of the user's own build."""
    spec = options.install.strip()
    if not spec:
        return ""
    if is_ship(spec):
        if options.wheel_cache is None:
            raise ConfigurationError(
                "shipping VibeML to a SkyPilot machine needs a cache folder for its wheel",
                {"install": spec},
                "Build the options with SkyOptions.from_settings(settings), or give wheel_cache.",
            )
        spec = str(ship_wheel(options.wheel_cache).path)
    local = Path(spec).expanduser()
    if local.exists():
        name = local.name if _SAFE_FILENAME.match(local.name) else ("vibeml.whl" if local.is_file() else "vibeml")
        mounts[f"~/vibeml-pkg/{name}"] = str(local.resolve())
        return f"./vibeml-pkg/{name}"
    return spec


def _disk_gb(choice: LaunchChoice, mounts: dict[str, str]) -> int:
    """The planner's disk (image + weights + checkpoints) plus mounted inputs, +10 %, at least 100 GB."""
    inputs = 0
    for src in mounts.values():
        p = Path(src)
        try:
            inputs += p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        except OSError:
            continue
    return max(MIN_DISK_GB, math.ceil((choice.disk_gb + inputs / 1e9) * 1.1))


def build_task_spec(
    program: TrainingProgram,
    job_id: str,
    choice: LaunchChoice | None,
    options: SkyOptions,
) -> SkyTaskSpec:
    """Turn a rendered program and the planner's choice into a task spec (no SkyPilot import).

    Raises:
        ConfigurationError: a bad bucket URL, requirement or environment variable name.
    """
    choice = choice or LaunchChoice()
    name = sky_cluster_name(job_id)
    spot = [choice.use_spot, *(c.use_spot for c in choice.candidates)]
    managed = any(spot) if options.managed is None else options.managed

    store: StoreSpec | None = None
    if options.bucket:
        store = StoreSpec(url=_bucket(options.bucket))
    elif managed:
        store = StoreSpec(name=name)  # SkyPilot creates it on the first enabled store, kept after the job
    if store is not None:
        root = f"{STORE_MOUNT}/{job_id}"
        output, checkpoints, state = f"{root}/output", f"{root}/checkpoints", f"{root}/state"
    else:  # relative to the job dir (~/vibeml-job), where the supervisor makes them absolute
        output, checkpoints, state = "output", "checkpoints", "state"

    mounts: dict[str, str] = {}
    install = _install(options, mounts)
    budget0 = budget_plan(choice, managed, options.autodown_idle_minutes)
    idle = autodown_minutes(budget0.runtime_limit_seconds, options.autodown_idle_minutes)
    budget = budget_plan(choice, managed, idle)

    updates: dict[str, Any] = _mount_inputs(program.config, mounts)
    trainer_limit = program.config.max_runtime_seconds
    if budget.runtime_limit_seconds:
        usable = max(60, budget.runtime_limit_seconds - budget.reserve_seconds - options.stop_grace_seconds)
        trainer_limit = min(trainer_limit or usable, usable)
    relative = ["output_dir", "checkpoint_dir", "events_path", *updates]  # the mounted inputs among them
    updates.update(
        output_dir=output,
        checkpoint_dir=checkpoints,
        events_path="events.jsonl",
        resume=True,
        max_runtime_seconds=trainer_limit,
    )
    config = TrainerConfig.model_validate({**program.config.model_dump(), **updates})
    job = RemoteJob(
        provider="skypilot",
        job_id=job_id,
        module=program.module,
        config=config.model_dump(mode="json"),
        relative_fields=tuple(relative),
        budget=RemoteBudget(
            max_runtime_seconds=budget.runtime_limit_seconds or 0,
            stop_grace_seconds=options.stop_grace_seconds,
            reserve_seconds=budget.reserve_seconds,
        ),
        state_dir=state,
        master_port=MASTER_PORT,
    )

    envs: dict[str, str] = {}
    for key, value in program.env.items():
        if not _ENV_NAME.match(key) or key.startswith("SKYPILOT") or key in _RESERVED_ENVS:
            raise ConfigurationError(f"environment variable name {key!r} cannot be passed to SkyPilot", {"env": key})
        envs[key] = str(value)
    envs.update(
        {
            PAYLOAD_ENV: encode_payload(job, compress=False),  # plain JSON: readable in an exported YAML
            "VIBEML_JOB_ID": job_id,
            "VIBEML_ECHO_EVENTS": "1",
            "VIBEML_INSTALL": install,
            "VIBEML_REQUIREMENTS": "\n".join(_requirements(program)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if options.remote_python:
        envs["VIBEML_REMOTE_PYTHON"] = options.remote_python

    disk = _disk_gb(choice, mounts)
    options_list: list[tuple[str | None, str | None, str | None, int, bool, float]] = [
        (choice.gpu_type, choice.cloud, choice.region, choice.gpu_count, choice.use_spot, choice.hourly_rate),
        *((c.gpu_type, c.cloud, c.region, c.gpu_count, c.use_spot, c.hourly_rate) for c in choice.candidates),
    ]
    resources: list[ResourceSpec] = []
    for (gpu, cloud, region, count, use_spot, rate), cap in zip(options_list, budget.caps, strict=True):
        spec = ResourceSpec(
            cloud=cloud.lower() if cloud else None,
            region=region if region and region.lower() not in ("global", "unknown", "any") else None,
            accelerator=sky_accelerator_name(gpu) if gpu else None,
            count=count,
            use_spot=use_spot,
            disk_size=disk,
            max_hourly_cost=cap,
            autostop_idle_minutes=None if managed else idle,
            hourly_rate=rate,
            labels={"vibeml-job": job_id},
        )
        if spec not in resources:
            resources.append(spec)
    return SkyTaskSpec(
        job_id=job_id,
        name=name,
        envs=envs,
        file_mounts=mounts,
        store=store,
        num_nodes=max(1, choice.num_nodes),
        resources=tuple(resources),
        managed=managed,
        runtime_limit_seconds=budget.runtime_limit_seconds,
        reserve_seconds=budget.reserve_seconds,
        remote_output_dir=output if store else f"{REMOTE_JOB_DIR}/{output}",  # from home, for the copy back
        remote_checkpoint_dir=checkpoints if store else f"{REMOTE_JOB_DIR}/{checkpoints}",
        config=config,
    )


# ------------------------------------------------------------------------------------------ export


def choice_from_flags(
    gpu: str,
    *,
    gpu_count: int = 1,
    num_nodes: int = 1,
    cloud: str | None = None,
    use_spot: bool = False,
    max_cost: float | None = None,
    runtime_dir: Path | None = None,
) -> LaunchChoice:
    """A choice from explicit flags, priced from the catalogue (SkyPilot's cached one, under
    ``runtime_dir``, i.e. ``settings.skypilot.runtime_dir``, laid over ours).

    Raises:
        ValidationError: A count of GPUs or nodes below 1 or absurdly large.
    """
    from vibeml.catalog.gpus import resolve_gpu

    for what, value, most in (("gpu_count", gpu_count, 512), ("nodes", num_nodes, 1024)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ValidationError(
                f"{what} must be a whole number from 1 to {most}, not {value!r}",
                {what: str(value)[:40]},
                f"Give e.g. --{what.replace('_', '-')} 1.",
            )
    from vibeml.catalog.prices import load_price_table, read_sky_catalogs

    table = load_price_table(read_sky_catalogs(runtime_dir=runtime_dir) or None)
    quote = table.cheapest(gpu, cloud=cloud, spot=use_spot, gpu_count=gpu_count)
    rate = quote.usd_per_gpu_hour * gpu_count if quote else 0.0
    return LaunchChoice(
        gpu_type=resolve_gpu(gpu).name,
        gpu_count=gpu_count,
        num_nodes=num_nodes,
        cloud=cloud,
        region=None,
        use_spot=use_spot,
        hourly_rate=rate,
        max_cost=max_cost,
    )


def export_header(spec: SkyTaskSpec, filename: str = "task.yaml") -> str:
    """YAML comment lines: how to run the exported task as is and where its adapter ends up.

    Built from the spec's VibeML-made names only (job id, cluster name, a checked bucket URL); a
    ``filename`` that is not a plain file name is replaced by ``task.yaml``.
    """
    import shlex

    from vibeml.backends.skypilot.status import bucket_download_argv, cluster_download_argv

    file = filename if _SAFE_FILENAME.match(filename) else "task.yaml"
    name = spec.name
    lines = [f"VibeML fine-tune {spec.job_id}, written by `vibeml sky export`. Run it as is from this folder:"]
    if spec.managed:
        lines.append(f"  sky jobs launch -n {name} {file}    (gated models: add --secret HF_TOKEN)")
    else:
        lines.append(f"  sky launch -c {name} {file}    (gated models: add --secret HF_TOKEN)")
    if spec.store is not None and spec.store.url is not None:
        url = f"{spec.store.url}/{spec.job_id}/output"
        try:
            fetch = shlex.join(bucket_download_argv(url, Path("output")))
        except Exception:
            fetch = "your cloud's CLI"
        lines += [f"The adapter is written to {url}; copy it with:", f"  {fetch}"]
    elif spec.store is not None:
        lines += [
            f"The adapter is written to SkyPilot bucket {name} (`sky storage ls`) under {spec.job_id}/output;",
            f"copy it with e.g. `aws s3 sync s3://{name}/{spec.job_id}/output output` (or gsutil for gs://).",
        ]
    else:
        idle = spec.resources[0].autostop_idle_minutes
        rsync = shlex.join(cluster_download_argv(name, spec.remote_output_dir, Path("output")))
        lines += [
            f"The adapter is written to ~/{spec.remote_output_dir} on the cluster, which tears itself down {idle} "
            "idle minutes after the job ends (the adapter goes with it). Copy it first:",
            f"  sky status {name} && {rsync} && sky down {name}",
        ]
    return "".join(f"# {line}\n" for line in lines)


def export_task_yaml(
    request: TrainingRequest,
    *,
    settings: Settings,
    choice: LaunchChoice | None = None,
    job_id: str | None = None,
    filename: str = "task.yaml",
) -> str:
    """The SkyPilot task YAML for a request (``sky launch`` it yourself); nothing is launched.

    Without ``choice`` the planner picks the cheapest fitting option (as ``vibeml launch`` would). The
    YAML starts with comments (:func:`export_header`): the command that runs it and how to get the
    adapter back. Local inputs are mounted from absolute paths; secrets (HF_TOKEN) are never written.
    """
    import secrets

    from vibeml.workflows.registry import render_program

    job_id = job_id or "vml-" + secrets.token_hex(4)
    if not _SAFE_FILENAME.match(job_id):
        raise ValidationError(f"job id {job_id[:60]!r} is not a plain name", {"job_id": job_id[:60]})
    from vibeml.estimate.planner import request_for_option, request_for_processes

    strategy: str | None
    if choice is None:
        from vibeml.client import VibeML

        option, choice = VibeML(settings=settings).plan_launch(request.model_copy(update={"backend": "skypilot"}))
        request = request_for_option(request, option)  # the plan's micro-batch × accumulation for its layout
        strategy = option.strategy
    else:  # explicit flags: the effective batch split over their GPUs, as a local --gpu-count N splits it
        request = request_for_processes(request, choice.gpu_count * max(1, choice.num_nodes))
        strategy = choice.strategy if choice.strategy != "single" else request.strategy
    env = {"HF_ENDPOINT": settings.hub.endpoint} if settings.hub.endpoint else {}
    program = render_program(
        request,
        job_id,
        output_dir="output",
        checkpoint_dir="checkpoints",
        events_path="events.jsonl",
        env=env,
        gpu_count=choice.gpu_count,  # the layout the YAML rents: one trainer process per GPU, on every node
        num_nodes=max(1, choice.num_nodes),
        strategy=strategy,
    )
    spec = build_task_spec(program, job_id, choice, SkyOptions.from_settings(settings))
    return export_header(spec, filename) + spec.to_yaml()
