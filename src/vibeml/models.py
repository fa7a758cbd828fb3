"""Domain models: what users ask for (``TrainingRequest``) and what VibeML tells them back.

User-facing models forbid unknown fields and validate at construction, so a typo is an error with a
clear message instead of a silently ignored setting.
"""

from __future__ import annotations

import json
import math
import re
import typing
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from vibeml.exceptions import BackendError

__all__ = [
    "AnyHandle",
    "CostEstimate",
    "DatasetFormat",
    "HandleData",
    "HeldOutScore",
    "Hyperparameters",
    "JobHandle",
    "JobProgress",
    "JobRecord",
    "JobStatus",
    "LocalHandle",
    "LocalHandleData",
    "OomRetry",
    "SkyPilotHandle",
    "SkyPilotHandleData",
    "TrainerEnd",
    "TrainingRequest",
    "VastHandle",
    "VastHandleData",
    "load_handle",
]

DatasetFormat = Literal["auto", "alpaca", "messages", "sharegpt", "prompt_completion", "text"]

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_CLOUD = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")


def _check_identifier_text(value: str, what: str, max_len: int = 1024) -> str:
    """Reject strings no model id, dataset id or path can hold: empty, too long, control characters."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be empty")
    if stripped != value:
        raise ValueError("must not start or end with whitespace")
    if len(value) > max_len:
        raise ValueError(f"is longer than {max_len} characters")
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp"):
            raise ValueError(f"contains a control or invisible character ({ch!r})")
    return value


def _is_number_field(annotation: Any) -> bool:
    """A field typed as a number (int/float, maybe optional) that does not also accept a bool."""
    args = set(typing.get_args(annotation)) or {annotation}
    return bool(args & {int, float}) and bool not in args


class StrictNumbers(BaseModel):
    """Numbers are numbers: ``True`` is not 1 (pydantic's lax mode would take it), and inf/nan are refused."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _is_number_field(field.annotation):
                raise ValueError("must be a number, not true/false")
        return value


class _UserModel(StrictNumbers):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_strip_whitespace=False, allow_inf_nan=False)


class Hyperparameters(_UserModel):
    """Training hyperparameters, each typed and range-checked."""

    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="Stop after this many optimizer steps.")
    num_epochs: float | None = Field(
        None, gt=0, le=1000, description="Passes over the dataset (default 1 when max_steps is not set)."
    )
    learning_rate: float = Field(2e-4, gt=0, le=1.0)
    batch_size: int = Field(4, ge=1, le=4096, description="Per-device batch size.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=4096)
    effective_batch: int | None = Field(
        None,
        ge=1,
        le=1_048_576,
        description="Sequences per optimizer step over all GPUs. Given alone, the planner chooses batch_size × "
        "accumulation × GPUs to match (see vibeml.estimate.autoconfig); a batch_size or accumulation also given "
        "is kept.",
    )
    max_seq_length: int = Field(1024, ge=8, le=1_048_576)
    lora_r: int = Field(16, ge=1, le=4096)
    lora_alpha: int = Field(32, ge=1, le=65536)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | Literal["all-linear"] = "all-linear"
    gradient_checkpointing: bool | None = Field(None, description="None = automatic (on for GPUs, off on CPU).")
    packing: bool = False
    seed: int = Field(42, ge=0, le=2**32 - 1)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    logging_steps: int = Field(1, ge=1, le=100_000)
    save_steps: int = Field(100, ge=1, le=10_000_000, description="Checkpoint every N steps.")
    save_total_limit: int = Field(2, ge=1, le=1000)
    eval_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="Evaluate every N steps (default: about 10 times a run, and at the end)."
    )

    @field_validator("num_epochs")
    @classmethod
    def _finite_epochs(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("num_epochs must be a finite number")
        return v

    @field_validator("lora_target_modules")
    @classmethod
    def _module_names(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list):
            if not v:
                raise ValueError("lora_target_modules must name at least one module, or be 'all-linear'")
            bad = [m for m in v if not _MODULE_NAME.match(m)]
            if bad:
                raise ValueError(f"lora_target_modules holds names that are not module names: {bad!r}")
        return v

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> Hyperparameters:
        if self.max_steps is not None and self.num_epochs is not None:
            raise ValueError("give max_steps or num_epochs, not both")
        return self

    @model_validator(mode="after")
    def _split_effective_batch(self) -> Hyperparameters:
        """With ``effective_batch`` given, fill in the batch size or accumulation left unset so that one GPU
        trains that batch (the planner replaces them per GPU choice); set ones must divide it."""
        eb = self.effective_batch
        if eb is None:
            return self
        given_b = "batch_size" in self.model_fields_set
        given_a = "gradient_accumulation_steps" in self.model_fields_set
        b, a = self.batch_size, self.gradient_accumulation_steps
        if eb % ((b if given_b else 1) * (a if given_a else 1)):
            raise ValueError(f"effective_batch {eb} is not a multiple of batch_size × gradient_accumulation_steps")
        if not given_b:
            b = max(
                d for d in range(1, min(4, eb // (a if given_a else 1)) + 1) if (eb // (a if given_a else 1)) % d == 0
            )
        if not given_a:
            a = max(1, eb // b)
        # Not marked as set: they stay the planner's to choose (validate_assignment would re-run this validator).
        self.__dict__["batch_size"] = b
        self.__dict__["gradient_accumulation_steps"] = a
        return self

    @property
    def effective_batch_size(self) -> int:
        """Sequences per optimizer step on one device."""
        return self.batch_size * self.gradient_accumulation_steps


_HYPER_FIELDS = frozenset(Hyperparameters.model_fields)


class TrainingRequest(_UserModel):
    """Everything needed to run one fine-tune.

    Hyperparameters may be given nested (``hyperparameters={...}``) or flat
    (``TrainingRequest(model=..., dataset=..., max_steps=100)``); flat ones are moved into
    ``hyperparameters``.
    """

    model: str = Field(description="Hub id (e.g. 'Qwen/Qwen2.5-0.5B') or a local model directory.")
    dataset: str = Field(description="Hub dataset id or a local .jsonl/.json/.csv/.parquet file.")
    workflow: str = Field("trl-lora", description="Training workflow; see `vibeml workflows`.")
    backend: str = Field("local", description="Where to run: 'local' (this machine).")
    gpu_type: str | None = None
    gpu_count: int = Field(1, ge=1, le=512)
    strategy: Literal["single", "ddp", "fsdp"] | None = Field(
        None, description="How several GPUs train: ddp (default) or fsdp (sharded); one GPU is always 'single'."
    )
    cloud: str | None = None
    use_spot: bool = False
    max_cost: float | None = Field(None, gt=0, le=1_000_000, description="Hard budget cap in USD.")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    dataset_format: DatasetFormat = "auto"
    dataset_split: str = "train"
    dataset_config: str | None = None
    column_mapping: dict[str, str] | None = Field(
        None,
        max_length=64,
        description="Rename dataset columns before format detection, {existing: new}, e.g. "
        "{'question': 'instruction', 'answer': 'output'}.",
    )
    output_dir: str | None = Field(None, description="Where the adapter/model is delivered (default: the job dir).")
    save_merged: bool = Field(False, description="Also save the LoRA adapter merged into the base weights.")
    push_to_hub: str | None = Field(
        None, description="Push the result to this hub repo (namespace/name) when the job completes."
    )
    hub_private: bool = Field(False, description="Create the push_to_hub repo private.")
    sample_prompts: list[str] = Field(
        default_factory=list, max_length=16, description="Prompts answered before and after training."
    )
    name: str | None = Field(None, description="A short label for the job.")
    resume_from: str | None = Field(
        None, description="A job id (or unique prefix): continue from that job's last complete checkpoint."
    )
    train_on: Literal["assistant", "all"] = Field(
        "assistant", description="messages/sharegpt data: the loss on assistant turns only (default), or on all."
    )
    # evaluation and watching: checked in vibeml.evaluation and vibeml.tracking
    eval_split: float | None = Field(None, gt=0, lt=1, description="Hold out this fraction of the rows for eval.")
    eval_dataset: str | None = Field(None, description="A separate eval dataset (hub id or local file).")
    eval_dataset_split: str = Field("train", description="The eval dataset's split.")
    keep_best: bool = Field(False, description="Deliver the checkpoint with the lowest eval loss.")
    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = Field(
        "none", description="Where the trainer also logs metrics (TRL report_to); tensorboard: the job's folder."
    )

    @model_validator(mode="after")
    def _eval_settings(self) -> TrainingRequest:
        from vibeml.evaluation import check_eval_settings

        check_eval_settings(self)
        return self

    @model_validator(mode="before")
    @classmethod
    def _lift_flat_hyperparameters(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        flat = {k: data[k] for k in data if k in _HYPER_FIELDS}
        if not flat:
            return data
        data = {k: v for k, v in data.items() if k not in _HYPER_FIELDS}
        nested = data.get("hyperparameters")
        if isinstance(nested, Hyperparameters):
            nested = nested.model_dump(exclude_unset=True)
        if nested is not None and not isinstance(nested, dict):
            return data  # leave it to field validation, which reports the wrong type
        merged = dict(nested or {})
        merged.update(flat)
        data["hyperparameters"] = merged
        return data

    @field_validator("model")
    @classmethod
    def _model_text(cls, v: str) -> str:
        return _check_identifier_text(v, "model")

    @field_validator("dataset")
    @classmethod
    def _dataset_text(cls, v: str) -> str:
        return _check_identifier_text(v, "dataset")

    @field_validator("eval_dataset", "eval_dataset_split")
    @classmethod
    def _eval_text(cls, v: str | None) -> str | None:
        return None if v is None else _check_identifier_text(v, "eval dataset")

    @field_validator("dataset_split", "dataset_config", "gpu_type", "cloud", "output_dir")
    @classmethod
    def _plain_text(cls, v: str | None) -> str | None:
        return None if v is None else _check_identifier_text(v, "value", 4096)

    @field_validator("cloud")
    @classmethod
    def _cloud_name(cls, v: str | None) -> str | None:
        if v is not None and not _CLOUD.match(v):
            raise ValueError("must be a cloud name like 'aws', 'gcp', 'runpod' or 'vast' (letters, digits, '-')")
        return v

    @field_validator("column_mapping")
    @classmethod
    def _columns(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if not v:
            return None
        for source, target in v.items():
            for name in (source, target):
                if not name.strip() or len(name) > 256 or any(ord(c) < 32 for c in name):
                    raise ValueError("column names must be 1-256 printable characters")
        if len(set(v.values())) != len(v):
            raise ValueError("two columns cannot be renamed to the same name")
        return v

    @field_validator("push_to_hub")
    @classmethod
    def _repo_id(cls, v: str | None) -> str | None:
        if v is not None and (not _REPO_ID.match(v) or ".." in v):
            raise ValueError("must be a hub repo id namespace/name, e.g. your-user/my-model")
        return v

    @field_validator("workflow", "backend")
    @classmethod
    def _registry_name(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", v):
            raise ValueError("must be a lower-case name like 'trl-lora' or 'local'")
        return v

    @field_validator("resume_from")
    @classmethod
    def _resume_job(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError("must be a job id like 'vml-0b2fcda3' (or a unique prefix of one)")
        return v

    @field_validator("name")
    @classmethod
    def _job_name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError("name may hold letters, digits, '.', '_' and '-' (at most 64)")
        return v

    @field_validator("sample_prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.strip() or len(p) > 4096:
                raise ValueError("each sample prompt must be 1-4096 characters")
        return v

    @field_validator("max_cost")
    @classmethod
    def _finite_cost(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("max_cost must be a finite number of USD")
        return v


class CostEstimate(BaseModel):
    """What a run is expected to cost (USD), with a range. Immutable.

    ``gpu_type`` is ``None`` for an estimate not tied to one GPU (e.g. a rate and a duration given directly).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type: str | None = None
    gpu_count: int = Field(1, ge=1)
    use_spot: bool = False
    cloud: str | None = None
    hourly_rate: float = Field(ge=0, description="USD per hour for all GPUs together.")
    estimated_duration_hours: float = Field(ge=0)
    min_cost: float = Field(ge=0)
    expected_cost: float = Field(ge=0)
    max_cost: float = Field(ge=0)
    currency: Literal["USD"] = "USD"
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> CostEstimate:
        for name in ("hourly_rate", "estimated_duration_hours", "min_cost", "expected_cost", "max_cost"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if not (self.min_cost <= self.expected_cost <= self.max_cost):
            raise ValueError(
                f"costs must satisfy min_cost <= expected_cost <= max_cost "
                f"(got {self.min_cost:.4f}, {self.expected_cost:.4f}, {self.max_cost:.4f})"
            )
        return self


class JobStatus(str, Enum):
    """Lifecycle of a job. ``TERMINAL`` states never change again."""

    PENDING = "pending"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

    TERMINAL: ClassVar[frozenset[JobStatus]]

    @property
    def is_terminal(self) -> bool:
        return self in JobStatus.TERMINAL

    def __str__(self) -> str:
        return self.value


JobStatus.TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})


# ------------------------------------------------------------------------------------------- handles


class HandleData(StrictNumbers):
    """The backend's part of a handle: frozen, every field typed, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LocalHandleData(HandleData):
    """A trainer process on this machine (``backends/local.py``)."""

    pid: int = Field(ge=1, description="The trainer's process id.")
    pgid: int = Field(ge=1, description="Its process group (its own session): stop signals the whole group.")
    proc_start: int | None = Field(
        None, ge=0, description="Its start time in clock ticks (/proc), which tells a reused pid apart."
    )
    events_path: str = Field(min_length=1)
    log_path: str = Field(min_length=1)
    output_dir: str = Field(min_length=1)
    argv: tuple[str, ...] = Field(description="The command line it was started with.")


class VastHandleData(HandleData):
    """A Vast.ai instance (``backends/vast/backend.py``). Written before the create (label, launcher), again once an
    instance is rented (its id and prices) and once it runs (``launched``, ``running_from``)."""

    label: str = Field(
        min_length=1,
        description="The instance label, vibeml-<installation id>-<job id> (older: vibeml-<job id>).",
    )
    launched: bool = Field(False, description="The instance runs and its inputs are in place.")
    launcher_pid: int = Field(ge=0, description="The process that launched it (a dead launcher's rent is undone).")
    launcher_start: int | None = Field(None, ge=0, description="That process's start time in clock ticks.")
    remote_dir: str = Field("/workspace/vibeml", min_length=1, description="The job's folder on the instance.")
    output_dir: str = Field(min_length=1, description="Where the adapter is brought back to.")
    checkpoint_dir: str = Field(min_length=1, description="Where a stopped job's last checkpoint is brought back to.")
    max_cost: float | None = Field(None, ge=0)
    disk_gb: int = Field(ge=1)
    instance_id: int | None = Field(None, ge=1)
    offer_id: int | None = None
    created_at: float | None = Field(None, description="Unix time of the create (storage bills from it).")
    storage_rate: float | None = Field(None, ge=0, description="Storage $/h.")
    gpu_rate: float | None = Field(None, ge=0, description="GPU $/h at launch (the bid for an interruptible one).")
    bid: float | None = Field(None, ge=0, description="The bid $/h for an interruptible instance; None on-demand.")
    budget_seconds: float | None = Field(None, ge=0, description="The run-time budget the instance enforces.")
    gpu_name: str | None = None
    price_per_hour: float | None = Field(None, ge=0)
    running_from: float | None = Field(None, description="The last time it was seen not yet running.")

    @model_validator(mode="after")
    def _launched_has_instance(self) -> VastHandleData:
        if self.launched and self.instance_id is None:
            raise ValueError("a launched Vast handle must name its instance_id")
        return self


class SkyPilotHandleData(HandleData):
    """A SkyPilot cluster or managed job (``backends/skypilot/backend.py``)."""

    mode: Literal["cluster", "managed"]
    cluster_name: str = Field(min_length=1, description="The cluster name (the managed job's name in managed mode).")
    request_id: str = Field(description="The launch request's id on the SkyPilot API server.")
    num_nodes: int = Field(ge=1)
    hourly_rate: float = Field(ge=0, description="The planned $/h for all nodes.")
    hourly_cap: float = Field(ge=0)
    store_url: str | None = Field(None, description="Bucket URL for outputs and checkpoints, when one is set.")
    store_name: str | None = None
    remote_output_dir: str = Field(min_length=1)
    remote_checkpoint_dir: str = Field(min_length=1)
    local_output_dir: str = Field(min_length=1)
    events_path: str = Field(min_length=1)
    runtime_limit_seconds: int | None = Field(None, ge=0)
    launched_at: float = Field(description="Unix time of the launch.")


class JobHandle(BaseModel):
    """What a backend needs to find a launched job again (from any process).

    This is the common part; each backend has its own subclass (:class:`LocalHandle`, :class:`VastHandle`,
    :class:`SkyPilotHandle`) whose ``backend`` names it and whose ``data`` is typed. The stored JSON is
    ``{"job_id", "backend", "backend_job_id", "job_dir", "data": {...}}``; read it back with
    :func:`load_handle` (``backend`` picks the model).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(min_length=1)
    backend: str
    backend_job_id: str
    job_dir: str = Field(min_length=1)


class LocalHandle(JobHandle):
    backend: Literal["local"] = "local"
    data: LocalHandleData


class VastHandle(JobHandle):
    backend: Literal["vast"] = "vast"
    data: VastHandleData


class SkyPilotHandle(JobHandle):
    backend: Literal["skypilot"] = "skypilot"
    data: SkyPilotHandleData


#: Any backend's handle; ``backend`` is the discriminator. A backend registered under another name that
#: reuses a built-in's code (a subclass) keeps that built-in's handle kind.
AnyHandle = Annotated[LocalHandle | VastHandle | SkyPilotHandle, Field(discriminator="backend")]
_HANDLE_KINDS = tuple(m.model_fields["backend"].default for m in (LocalHandle, VastHandle, SkyPilotHandle))
_ANY_HANDLE: TypeAdapter[LocalHandle | VastHandle | SkyPilotHandle] = TypeAdapter(AnyHandle)


def load_handle(
    raw: str | bytes | Mapping[str, object], *, where: str = "the jobs database"
) -> LocalHandle | VastHandle | SkyPilotHandle:
    """A stored handle (its JSON text, or that JSON parsed) as its backend's typed handle.

    Raises:
        BackendError: It is not valid JSON, names no known backend, or a field is missing or wrong; the
            message names the job and the fields (not their values: only an unknown backend name is quoted).
    """
    try:
        if isinstance(raw, (str, bytes)):
            return _ANY_HANDLE.validate_json(raw)
        return _ANY_HANDLE.validate_python(raw)
    except PydanticValidationError as exc:
        job_id = _stored_job_id(raw)
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = err["loc"][1:] if err["loc"] and err["loc"][0] in _HANDLE_KINDS else err["loc"]
            problems.append(
                f"{'.'.join(str(x) for x in loc) or 'handle'}: {str(err['msg']).removeprefix('Value error, ')}"
            )
        raise BackendError(
            f"the stored handle of job {job_id or '(unknown)'} in {where} is not valid: " + "; ".join(problems[:10]),
            {"job_id": job_id, "where": where, "fields": [p.split(":", 1)[0] for p in problems]},
            "The handle is how VibeML finds the job's process or machine; it was changed outside VibeML or "
            "written by an incompatible version. If the job may still be running, stop it by hand (local: its "
            "trainer process; vast: `vibeml vast cleanup`; skypilot: `sky status` and `sky down`).",
        ) from None


def _stored_job_id(raw: str | bytes | Mapping[str, object]) -> str | None:
    """The ``job_id`` of a stored handle that failed to load, when one can be read (for the message)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    job_id = raw.get("job_id") if isinstance(raw, Mapping) else None
    return job_id[:64] if isinstance(job_id, str) else None


class TrainerEnd(str, Enum):
    """How the trainer's event stream ended, as the progress fold read it."""

    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"
    #: the program exited without writing a terminal event (killed, out of memory, crashed)
    NO_FINAL_EVENT = "no_final_event"

    def __str__(self) -> str:
        return self.value


class OomRetry(BaseModel):
    """One out-of-memory retry of the trainer (its ``oom_retry`` event): what failed, what ran next, and the
    memory estimate's error for that configuration (``underestimate_at_least`` = capacity ÷ estimate)."""

    model_config = ConfigDict(extra="ignore")

    attempt: int
    step: int
    failed: str = Field(description="The configuration that ran out, e.g. 'micro-batch 4 x 1, checkpointing off'.")
    next: str
    estimated_gib: float | None = None
    capacity_gib: float | None = None
    peak_gib: float | None = None
    underestimate_at_least: float | None = None


class HeldOutScore(BaseModel):
    """Exact match on held-out prompts the job never trained on (the demo's: before and after training)."""

    model_config = ConfigDict(extra="ignore")

    correct: int = Field(ge=0)
    total: int = Field(ge=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def exact_match(self) -> float:
        """The share answered exactly right, 0-1."""
        return round(self.correct / self.total, 4)

    @property
    def text(self) -> str:
        """E.g. ``"95% (57/60)"``."""
        return f"{self.correct / self.total:.0%} ({self.correct}/{self.total})"


class JobProgress(BaseModel):
    """The latest progress of a running or finished job, from the trainer's event stream."""

    model_config = ConfigDict(extra="ignore")

    status: JobStatus
    step: int = 0
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    first_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_seconds: float | None = None
    elapsed_seconds: float | None = None
    last_checkpoint: str | None = None
    resumed_from: str | None = Field(None, description="The checkpoint this run continued from.")
    world_size: int | None = Field(None, description="Trainer processes (one per GPU), from the trainer's start.")
    num_nodes: int | None = Field(None, description="Machines the trainer's processes run on.")
    strategy: Literal["single", "ddp", "fsdp"] | None = Field(
        None, description="How the processes share the work: single, ddp (data parallel) or fsdp (sharded)."
    )
    global_batch_size: int | None = Field(
        None, description="Sequences per optimizer step over all processes (batch × accumulation × processes)."
    )
    notes: list[str] = Field(default_factory=list, description="What the trainer chose (a torn checkpoint skipped).")
    output_dir: str | None = None
    error: str | None = None
    trainer_end: TrainerEnd | None = Field(
        None, description="How the trainer's event stream ended; None while it has not (or no stream was read)."
    )
    eval_loss: float | None = Field(None, description="The latest eval loss (eval_split or eval_dataset).")
    eval_perplexity: float | None = None
    eval_step: int | None = Field(None, description="The step of the latest evaluation.")
    best_eval_loss: float | None = None
    best_checkpoint: str | None = Field(None, description="keep_best: the checkpoint the run delivered.")
    samples_before: list[dict[str, str]] = Field(default_factory=list)
    samples_after: list[dict[str, str]] = Field(default_factory=list)
    score_before: HeldOutScore | None = Field(None, description="Held-out exact match before training.")
    score_after: HeldOutScore | None = Field(None, description="Held-out exact match after training.")
    oom_retries: list[OomRetry] = Field(
        default_factory=list, description="Out-of-memory retries, each with the estimate error (for recalibration)."
    )
    cost_so_far: float = 0.0

    @property
    def fraction_done(self) -> float | None:
        if not self.max_steps:
            return None
        return min(1.0, self.step / self.max_steps)


class JobRecord(BaseModel):
    """One job as the store keeps it."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    name: str | None = None
    status: JobStatus
    backend: str
    request: TrainingRequest
    handle: AnyHandle | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    output_dir: str | None = None
    progress: JobProgress | None = None
    estimate: CostEstimate | None = None
    cost_so_far: float = 0.0
    stop_requested: bool = False
    warnings: list[str] = Field(default_factory=list, description="Shown once, on the launch response.")
    notes: list[str] = Field(
        default_factory=list, description="Shown once, on the launch response: e.g. which checkpoint it resumes from."
    )


# ---------------------------------------------------------------- what a backend is told to rent


class LaunchChoice(BaseModel):
    """What the planner chose for a job, handed to ``Backend.launch``.

    Cloud backends rent what it names (or the closest match they find); the local backend ignores it.
    ``max_runtime_seconds`` is the hard wall-clock cap derived from the budget: backends enforce it on
    the machine (the trainer checkpoints and stops at it; the machine is torn down after).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type: str | None = None
    gpu_count: int = 1
    num_nodes: int = 1
    cloud: str | None = None
    region: str | None = None
    use_spot: bool = False
    hourly_rate: float = 0.0
    max_cost: float | None = None
    estimated_hours: float = 0.0
    required_memory_gib: float | None = None
    disk_gb: float = 50.0
    strategy: Literal["single", "ddp", "fsdp"] = "single"
    max_runtime_seconds: float | None = None
    candidates: tuple[LaunchCandidate, ...] = ()


class LaunchCandidate(BaseModel):
    """Another equally good (cloud, region, GPU) choice a backend may fall back to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type: str
    gpu_count: int = 1
    cloud: str | None = None
    region: str | None = None
    use_spot: bool = False
    hourly_rate: float = 0.0


LaunchChoice.model_rebuild()
