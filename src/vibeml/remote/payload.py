"""The one typed payload of the remote supervisor: what a rented machine must run, and under what budget.

It travels as DATA in ``$VIBEML_JOB`` (never spliced into a script): ``v2:`` + base64 of zlib-compressed JSON
(Vast's environment has a size limit), or the plain JSON object (SkyPilot's task YAML, readable in an
export). Every number a machine needs to keep the budget lives in :class:`RemoteBudget`, with one name per
idea for every provider.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["PAYLOAD_ENV", "RemoteBudget", "RemoteJob", "decode_payload", "encode_payload"]

PAYLOAD_ENV = "VIBEML_JOB"
_PREFIX = "v2:"
_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class RemoteBudget(BaseModel):
    """The budget clock, in seconds of billed run time (counted from the machine's start: install included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_runtime_seconds: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Hard budget of run time; 0 = none (no paid limit)."
    )
    stop_grace_seconds: float = Field(
        120.0, ge=0, allow_inf_nan=False, description="SIGTERM this long before the end (checkpoint and stop)."
    )
    reserve_seconds: float = Field(
        30.0, ge=0, allow_inf_nan=False, description="Kept after the end of training for the provider's teardown."
    )
    max_cost_usd: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="The cap in dollars, where the machine can read its own bill."
    )
    bill_poll_seconds: float = Field(60.0, ge=1, le=900, description="How often the bill is read.")
    linger_seconds: float = Field(
        1800.0, ge=0, allow_inf_nan=False, description="How long a finished machine waits for the client's copy."
    )
    input_wait_seconds: float = Field(
        1800.0, ge=0, allow_inf_nan=False, description="How long to wait for the uploaded inputs."
    )


class RemoteJob(BaseModel):
    """A job for ``python -m vibeml.remote``.

    Paths in ``config`` named by ``relative_fields`` are relative to the job directory
    (``$VIBEML_REMOTE_DIR``, default ``vibeml-job`` under the working directory) and are made absolute there.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[2] = 2
    provider: Literal["vast", "skypilot"]
    job_id: str = Field("", max_length=200)
    module: str = Field("vibeml.trainer", pattern=_MODULE, description="The trainer module (python -m).")
    config: dict[str, Any] = Field(default_factory=dict, description="The trainer's JSON config.")
    relative_fields: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the trainer.")
    inputs: tuple[str, ...] = Field((), description="Uploaded inputs to wait for (inputs/.complete marks them).")
    setup: tuple[str, ...] = Field((), description="The workflow's fixed setup steps (import checks).")
    requirements: tuple[str, ...] = ()
    budget: RemoteBudget = RemoteBudget()
    state_dir: str = Field("", description="Where the budget state lives ('' = the job dir; a bucket path).")
    gpus_per_node: int = Field(1, ge=1, le=64, description="Trainer processes per machine (SkyPilot: its env).")
    master_port: int = Field(29500, ge=1024, le=65535)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        bad = [k for k in env if not re.match(_ENV_NAME, k)]
        if bad:
            raise ValueError(f"{len(bad)} environment variable name(s) are not valid")
        return env


def encode_payload(job: RemoteJob, *, compress: bool = True) -> str:
    """The payload as the text of ``$VIBEML_JOB`` (compressed, or the plain JSON object)."""
    text = job.model_dump_json()
    if not compress:
        return text
    return _PREFIX + base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def decode_payload(text: str) -> RemoteJob:
    """Parse ``$VIBEML_JOB``.

    Raises:
        ValueError: Not a payload of this version (the message says which part is wrong, never the values).
    """
    text = (text or "").strip()
    try:
        if text.startswith(_PREFIX):
            raw = zlib.decompress(base64.b64decode(text[len(_PREFIX) :], validate=True), bufsize=1 << 20)
            data = json.loads(raw.decode("utf-8"))
        elif text.startswith("{"):
            data = json.loads(text)
        else:
            raise ValueError("not a VibeML job payload (expected 'v2:…' or a JSON object)")
    except (binascii.Error, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the job payload is damaged ({type(exc).__name__})") from None
    try:
        return RemoteJob.model_validate(data)
    except ValidationError as exc:
        where = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise ValueError(f"the job payload is not valid: {', '.join(where)[:300]}") from None
