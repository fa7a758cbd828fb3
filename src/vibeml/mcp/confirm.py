"""Confirmation before money: what a person is asked before a paid launch, and the token that carries their yes.

A paid launch starts only on the person's explicit yes. The MCP server asks through elicitation where the
client supports it; where it does not, the dry run hands out a **confirmation token** and the assistant,
having shown the plan to the person, calls again with it. Either way, the yes is bound to one plan:

* the token is an HMAC-SHA256 (a per-server random secret) over the plan's fingerprint — the request as it
  will run (every field, local paths resolved), the backend, the choice (GPU, count, cloud, market) and the
  cap — an expiry and a random nonce;
* it is redeemed against the preparation that is about to start (``VibeML.launch``'s ``confirm`` hook), so
  a request or plan that changed since is refused;
* it is single use (nonces are remembered until they expire) and short-lived (10 minutes by default).

Live prices are not in the fingerprint (they move between two calls); the cap is, and the launch never
spends past it. Nothing here reads or writes a credential: the token is not a secret of the person's, and
the messages name only the plan and its cost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vibeml.exceptions import ConfirmationError

if TYPE_CHECKING:
    from vibeml.client import LaunchPreparation
    from vibeml.reports import OrphanedResource

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "Confirmer",
    "cleanup_fingerprint",
    "cleanup_summary",
    "is_paid",
    "plan_fingerprint",
    "plan_summary",
]

DEFAULT_TTL_SECONDS = 600.0
_VERSION = "v1"


def is_paid(prep: LaunchPreparation) -> bool:
    """A paid launch rents something: its backend planned a choice (free backends plan nothing)."""
    return prep.choice is not None


def plan_fingerprint(prep: LaunchPreparation) -> dict[str, Any]:
    """What a yes is bound to: the request as it will run, its backend, the choice and the cap."""
    choice = prep.choice
    return {
        "request": prep.request.model_dump(mode="json"),
        "backend": prep.request.backend,
        "choice": None
        if choice is None
        else {
            "gpu_type": choice.gpu_type,
            "gpu_count": choice.gpu_count,
            "num_nodes": choice.num_nodes,
            "cloud": choice.cloud,
            "use_spot": choice.use_spot,
        },
        "cap": prep.request.max_cost,
    }


def plan_summary(prep: LaunchPreparation) -> str:
    """The question put to the person: what would be rented, what it is expected to cost, at most, and the cap."""
    choice, est, request = prep.choice, prep.estimate, prep.request
    if choice is None:
        return f"Train {request.model} on this machine (free)."
    market = "spot (can be interrupted)" if choice.use_spot else "on-demand"
    where = choice.cloud or request.backend
    if where != request.backend:
        where += f" via {request.backend}"
    if choice.region:
        where += f" ({choice.region})"
    gpus = f"{choice.gpu_count} x {choice.gpu_type}" if choice.gpu_type else f"{choice.gpu_count} GPU(s)"
    lines = [
        f"Start a paid fine-tune of {request.model} on {request.dataset}?",
        f"- Where: {gpus} on {where}, {market}, about ${choice.hourly_rate:.2f}/hour",
        f"- Expected cost: ${est.expected_cost:.2f} (about {est.estimated_duration_hours:.2f} h);"
        f" at most ${est.max_cost:.2f}",
        f"- Hard cap: ${request.max_cost:.2f} (the job is stopped before it spends more)",
    ]
    lines += [f"- Note: {w}" for w in prep.budget.warnings]
    return "\n".join(lines)


def cleanup_fingerprint(resources: list[OrphanedResource]) -> dict[str, Any]:
    """What a yes to a cleanup is bound to: exactly which machines (backend, id) it destroys."""
    return {"destroy": sorted([r.backend, r.id] for r in resources)}


def cleanup_summary(resources: list[OrphanedResource]) -> str:
    """The question put to the person before a cleanup destroys anything."""
    lines = [f"Destroy {len(resources)} leftover machine(s) VibeML rented (no live job uses them)?"]
    for r in resources[:20]:
        rate = "" if r.dph_total is None else f", ${r.dph_total:.2f}/hour"
        job = f" of job {r.job_id}" if r.job_id else ""
        lines.append(f"- {r.backend} {r.id}{job} ({r.status or 'unknown status'}{rate}): {r.reason}")
    if len(resources) > 20:
        lines.append(f"- … and {len(resources) - 20} more")
    lines.append("Their disks go with them. Machines that are not VibeML's are never touched.")
    return "\n".join(lines)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Confirmer:
    """Issues and redeems confirmation tokens, one per plan; one per server (its secret lives in memory only).

    Args:
        secret: The HMAC key (random, 32 bytes, when omitted): tokens of another server never verify.
        ttl_seconds: How long a token stays valid.
        clock: Seconds since the epoch (tests inject their own).
    """

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce → expiry
        self._lock = threading.Lock()

    def _mac(self, kind: str, fingerprint: dict[str, Any], expires: int, nonce: str) -> str:
        body = json.dumps(
            {"kind": kind, "plan": fingerprint, "exp": expires, "nonce": nonce}, sort_keys=True, separators=(",", ":")
        )
        return _b64(hmac.new(self._secret, body.encode("utf-8"), hashlib.sha256).digest())

    def issue(self, prep: LaunchPreparation, kind: str = "launch") -> str:
        """A token for exactly this plan, valid for ``ttl_seconds``, usable once."""
        return self.issue_for(plan_fingerprint(prep), kind)

    def issue_for(self, fingerprint: dict[str, Any], kind: str) -> str:
        expires = int(self._clock() + self.ttl_seconds)
        nonce = _b64(secrets.token_bytes(12))
        return f"{_VERSION}.{expires}.{nonce}.{self._mac(kind, fingerprint, expires, nonce)}"

    def redeem(self, token: str, prep: LaunchPreparation, kind: str = "launch") -> None:
        """Accept ``token`` for this plan once.

        Raises:
            ConfirmationError: Malformed, forged, for another plan (request, backend, choice or cap changed),
                expired, or already used.
        """
        self.redeem_for(token, plan_fingerprint(prep), kind)

    def redeem_for(self, token: str, fingerprint: dict[str, Any], kind: str) -> None:
        parts = token.split(".") if isinstance(token, str) and len(token) <= 512 else []
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            raise ConfirmationError(
                "the confirmation token is not one this server issued",
                {"kind": kind},
                "Run the dry run again (dry_run=true), show the plan to the person, and pass the token it returns.",
            )
        _, exp_text, nonce, mac = parts
        expires = int(exp_text)
        if not hmac.compare_digest(mac, self._mac(kind, fingerprint, expires, nonce)):
            raise ConfirmationError(
                "the confirmation token is for a different plan: the request, backend, GPU choice or cap changed "
                "since the dry run (or the server restarted)",
                {"kind": kind},
                "Run the dry run again with exactly these arguments, show the new plan and cost to the person, and "
                "call again with its token once they say yes.",
            )
        now = self._clock()
        with self._lock:
            self._used = {n: e for n, e in self._used.items() if e >= now}
            if nonce in self._used:
                raise ConfirmationError(
                    "this confirmation token was already used: each yes starts one job",
                    {"kind": kind},
                    "To start another job, run the dry run again and ask the person again.",
                )
            if expires < now:
                raise ConfirmationError(
                    f"the confirmation token expired ({int(self.ttl_seconds // 60)} minutes after the dry run)",
                    {"kind": kind, "expired_seconds_ago": round(now - expires)},
                    "Run the dry run again, show the plan and cost to the person, and use the new token.",
                )
            self._used[nonce] = expires
