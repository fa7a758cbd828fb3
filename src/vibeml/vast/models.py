"""Typed views of Vast.ai payloads and the errors the Vast client raises.

The client itself returns plain dicts (the official SDK's convention); these models are for code that
wants types: ``Offer.model_validate(row)``, ``Instance.model_validate(row)``. Unknown fields are ignored
so a new server field never breaks a parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import CloudProviderError, CredentialError

__all__ = [
    "Instance",
    "InstanceStatus",
    "Offer",
    "VastAPIError",
    "VastAmbiguousCreateError",
    "VastAuthError",
    "VastNotFoundError",
]


class InstanceStatus(str, Enum):
    """Values of an instance's ``actual_status`` (``None`` on the wire means not yet scheduled)."""

    CREATED = "created"
    LOADING = "loading"
    RUNNING = "running"
    STOPPED = "stopped"
    FROZEN = "frozen"
    EXITED = "exited"
    REBOOTING = "rebooting"
    UNKNOWN = "unknown"
    OFFLINE = "offline"

    #: Statuses from which an instance will not reach ``running`` on its own.
    TERMINAL: ClassVar[frozenset[InstanceStatus]]


InstanceStatus.TERMINAL = frozenset({InstanceStatus.EXITED, InstanceStatus.OFFLINE})


class Offer(BaseModel):
    """One machine offer (an "ask") from ``search_offers``; memory in MB, prices in $/hour."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int = Field(description="Offer (ask) id: pass it to create_instance.")
    machine_id: int | None = None
    host_id: int | None = None
    num_gpus: int = 1
    gpu_name: str = ""
    gpu_ram: float = Field(0.0, description="Per-GPU memory in MB.")
    gpu_total_ram: float | None = None
    compute_cap: int | None = None
    cuda_max_good: float | None = None
    driver_version: str | None = None
    cpu_cores_effective: float | None = None
    cpu_ram: float | None = Field(None, description="MB.")
    disk_space: float | None = Field(None, description="GB available.")
    inet_up: float | None = Field(None, description="Mb/s.")
    inet_down: float | None = Field(None, description="Mb/s.")
    dph_base: float | None = Field(None, description="$/hour for the GPUs alone.")
    dph_total: float = Field(0.0, description="$/hour incl. storage at the searched allocated_storage.")
    min_bid: float | None = Field(None, description="Lowest interruptible bid, $/hour.")
    storage_cost: float | None = Field(None, description="$/GB/month (720 h).")
    inet_up_cost: float | None = Field(None, description="$/GB.")
    inet_down_cost: float | None = Field(None, description="$/GB.")
    reliability: float | None = None
    score: float | None = None
    dlperf: float | None = None
    dlperf_per_dphtotal: float | None = None
    total_flops: float | None = None
    verification: str | None = None
    geolocation: str | None = None
    rentable: bool | None = None
    rented: bool | None = None
    hosting_type: int | None = Field(None, description="1 = datacenter.")
    duration: float | None = Field(None, description="Seconds the host offers the machine for.")

    @property
    def gpu_ram_gb(self) -> float:
        """Per-GPU memory in GB (the server reports MB)."""
        return self.gpu_ram / 1000.0

    def storage_dph(self, disk_gb: float) -> float:
        """Storage $/hour for ``disk_gb`` at this offer's monthly rate."""
        return (self.storage_cost or 0.0) * disk_gb / 720.0


class Instance(BaseModel):
    """A rented instance as ``show_instance(s)`` reports it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    actual_status: str | None = None
    intended_status: str | None = None
    cur_state: str | None = None
    status_msg: str | None = None
    label: str | None = None
    image_uuid: str | None = None
    onstart: str | None = None
    extra_env: list[list[str]] | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    public_ipaddr: str | None = None
    start_date: float | None = Field(None, description="Unix time the contract started.")
    dph_total: float | None = None
    storage_total_cost: float | None = None
    is_bid: bool | None = None
    gpu_util: float | None = None
    disk_usage: float | None = None
    gpu_name: str | None = None
    num_gpus: int | None = None
    machine_id: int | None = None

    @property
    def status(self) -> InstanceStatus | None:
        """``actual_status`` as an enum (``None`` when unset or not a known value)."""
        try:
            return InstanceStatus(self.actual_status) if self.actual_status else None
        except ValueError:
            return None

    @property
    def is_running(self) -> bool:
        return self.actual_status == InstanceStatus.RUNNING.value


_SUGGESTIONS: Mapping[str, str] = {
    "invalid_args": "Check the request's fields against the Vast limits (disk >= 8 GB, label <= 256 chars, "
    "image <= 1024 chars, onstart + args <= 4096 chars).",
    "invalid_price": "Bid between the offer's min_bid and 128 $/hour.",
    "no_such_ask": "The offer is gone or was rented by someone else: search again and pick another.",
    "not_found": "The instance does not exist (any more): list them with show_instances().",
    "rate_limit_exceeded": "Slow down and retry in a few seconds.",
    "auth_error": "Check the Vast API key (env VAST_API_KEY or `vibeml config set-credential vast api_key`).",
}


class VastAPIError(CloudProviderError):
    """The Vast API refused or failed a request.

    Attributes:
        status: HTTP status (``None`` when no response came back).
        error: The server's error code (``invalid_args``, ``no_such_ask``, …) or a client-side one
            (``connection_error``, ``timeout``, ``bad_response``).
        msg: The server's human-readable message, key masked.
        method: HTTP method of the failed request.
        path: URL path (never the query string, which could carry a key).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        msg: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retryable: bool = False,
        context: Mapping[str, Any] | None = None,
        recovery_suggestion: str | None = None,
    ) -> None:
        ctx: dict[str, Any] = {"error": error, "msg": msg, "method": method, "path": path}
        ctx = {k: v for k, v in ctx.items() if v is not None}
        ctx.update(context or {})
        suggestion = recovery_suggestion or _SUGGESTIONS.get(error or "")
        if suggestion is None and status is not None and status >= 500:
            suggestion = "Vast.ai had a server error: retry in a minute; check https://status.vast.ai."
        super().__init__(message, ctx, suggestion, status_code=status, retryable=retryable)
        self.status = status
        self.error = error
        self.msg = msg
        self.method = method
        self.path = path


class VastNotFoundError(VastAPIError):
    """The instance, offer or key does not exist (404, ``{"instances": null}``, ``no_such_ask``)."""


class VastAuthError(VastAPIError, CredentialError):
    """401: the API key was refused ("Invalid user key"). Never carries the key."""

    exit_code = CredentialError.exit_code


class VastAmbiguousCreateError(VastAPIError):
    """A create request may or may not have rented a machine, and a lookup could not tell.

    ``label`` is the label the instance would carry (None: the create had none): look for it with
    ``show_instances()`` before trying again, and destroy it if it appears.
    """

    def __init__(self, message: str, *, label: str | None, offer_id: int, **kwargs: Any) -> None:
        context = dict(kwargs.pop("context", None) or {})
        context.update({"label": label, "offer_id": offer_id})
        kwargs.setdefault(
            "recovery_suggestion",
            f"Run show_instances() and look for label {label!r}; destroy it if present, then retry."
            if label is not None
            else "Run show_instances() and look for a new instance on this offer; destroy it if it is unwanted. "
            "Give create_instance a label to make such failures recoverable.",
        )
        super().__init__(message, context=context, **kwargs)
        self.label = label
        self.offer_id = offer_id
