"""Settings of the Vast.ai backend: the image, the safety floors and the timings.

Resolved once, when the backend is built, from ``VIBEML_VAST_<FIELD>`` environment variables (e.g.
``VIBEML_VAST_POLL_INTERVAL=0.05``); tests pass a :class:`VastOptions` directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vibeml.exceptions import ConfigurationError

__all__ = ["DEFAULT_IMAGE", "VastOptions"]

#: The CUDA PyTorch image instances run. The machine then installs the lock's torch, whose Linux wheels bring
#: their own CUDA runtime (13.0 for torch 2.13.0): the host's driver must support that version, which the
#: default of ``min_cuda`` reads from the lock (:func:`vibeml.locks.cuda_floor`), never typed here.
DEFAULT_IMAGE = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"


def _lock_cuda_floor() -> float:
    from vibeml.locks import cuda_floor

    return cuda_floor()


class VastOptions(BaseModel):
    """How the Vast backend rents, watches and tears down instances."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = Field(DEFAULT_IMAGE, min_length=1, max_length=1024, description="Docker image.")
    min_cuda: float = Field(
        default_factory=_lock_cuda_floor,
        ge=0,
        description="Lowest cuda_max_good a host may report (default: the CUDA the locked torch is built for).",
    )
    min_reliability: float = Field(0.98, ge=0, le=1, description="Reliability floor for offers.")
    search_limit: int = Field(500, ge=1, le=10_000, description="Offers fetched per search.")
    bid_margin: float = Field(1.05, ge=1.0, le=10.0, description="Bid = min_bid × this.")
    max_rebid_factor: float = Field(
        1.25, ge=1.0, le=10.0, description="A preempted bid is raised to the new min_bid up to this × the first bid."
    )
    max_rebids: int = Field(5, ge=0, le=100, description="Re-bids per job after preemptions.")
    spot_wait: float = Field(
        900.0, ge=0, description="Seconds a preempted/stopped instance may wait to run again before it is destroyed."
    )
    poll_interval: float = Field(10.0, gt=0, description="Seconds between show_instance polls while starting.")
    start_timeout: float = Field(900.0, gt=0, description="Seconds an instance may take to reach running.")
    boot_timeout: float = Field(
        1800.0, gt=0, description="Seconds after running within which the on-instance runner must report."
    )
    remote_dir: str = Field(
        "/workspace/vibeml", min_length=1, description="Job dir on the instance (relative: under the onstart cwd)."
    )
    remote_python: str = Field("python3", min_length=1, description="Python that runs the remote runner.")
    log_mirror: str = Field("/proc/1/fd/1", description="Where the runner also copies its output ('' = nowhere).")
    linger: float = Field(1800.0, ge=0, description="Seconds the runner waits for the client to collect artifacts.")
    input_wait: float = Field(1800.0, ge=0, description="Seconds the runner waits for uploaded inputs.")
    term_grace: float = Field(120.0, ge=0, description="SIGTERM → SIGKILL grace on the instance (seconds).")
    cap_safety: float = Field(0.95, gt=0, le=1, description="Share of max_cost / dph_total the instance may run.")
    retry: int = Field(3, ge=1, le=20, description="HTTP attempts per request.")
    http_timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request.")
    create_lookup_grace: float = Field(10.0, ge=0, description="Seconds to look for an ambiguously created instance.")
    logs_tail: int = Field(5000, ge=1, le=1_000_000, description="Log lines read per status poll.")
    logs_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a log to be ready.")
    logs_poll: float = Field(0.3, gt=0, description="Seconds between log-ready checks.")
    destroy_attempts: int = Field(3, ge=1, le=20, description="Rounds of destroy retries (each with HTTP retries).")
    ssh_user: str = Field("root", min_length=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> VastOptions:
        """Options from ``VIBEML_VAST_<FIELD>`` variables (unset or empty = default, except strings that
        may be empty such as ``VIBEML_VAST_LOG_MIRROR``).

        Raises:
            ConfigurationError: A value that does not parse or is out of range.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(f"VIBEML_VAST_{name.upper()}")
            if raw is None or (raw == "" and name != "log_mirror"):
                continue
            values[name] = raw
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"VIBEML_VAST_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(
                f"invalid Vast backend setting: {problems}",
                recovery_suggestion="Fix or unset the named environment variables.",
            ) from None
