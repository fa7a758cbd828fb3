"""Vast.ai's end of the remote supervisor (:mod:`vibeml.remote`): the instance's onstart, its bill, its destroy.

The instance's onstart (:data:`ONSTART`, fixed text, no user string ever in it) waits for the uploaded
inputs, installs the shipped VibeML wheel (or the user's own build) with the lock's pinned requirements,
and execs ``python -m vibeml.remote`` from the installed package. The job arrives as the typed payload in
``$VIBEML_JOB`` (:class:`~vibeml.remote.payload.RemoteJob`, budget included); the onstart's shell also reads
``VIBEML_REMOTE_DIR`` (the job directory), ``VIBEML_WHEEL``/``VIBEML_INSTALL`` (what to install),
``VIBEML_INPUT_WAIT`` (seconds) and ``VIBEML_REMOTE_PYTHON``.

What Vast adds to the shared timeline (:class:`VastSupervisor`):

* the onstart's install is billed run time: it is counted from ``VIBEML_ONSTART_AT``, at every start;
* the machine reads its own bill: with Vast's ``CONTAINER_ID`` and ``CONTAINER_API_KEY`` (an instance-scoped
  key; the user's key never reaches the machine) and ``VIBEML_VAST_API``, ``show_instance`` gives
  ``dph_total`` and ``start_date`` every ``budget.bill_poll_seconds``; the money left becomes seconds left at
  the *observed* rate, so a machine that bills faster than its quote still stops under ``budget.max_cost_usd``;
* after training it lingers until the client has collected the artifacts (``.collected``), the linger time
  has passed or nothing is left, then destroys its instance through the API (retried; a stop as the last
  resort) with the reserve still in hand; when the run cannot start it destroys at once;
* ``VIBEML_LOG_MIRROR`` (``/proc/1/fd/1`` on Vast) receives every line too, so they reach the container log
  that the logs API serves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from vibeml.exceptions import retry_with_backoff
from vibeml.remote.payload import RemoteJob
from vibeml.remote.supervisor import COLLECTED_MARKER, Supervisor

__all__ = ["ONSTART", "REQUIREMENTS_FILE", "SUPERVISOR", "WHEEL_DIR", "VastSupervisor", "destroy_own_instance"]

#: The instance's onstart script: fixed text, identical for every job (no user string; what it installs
#: is DATA in the environment). It notes when it started (the install is billed run time too). When there is
#: something to install (``$VIBEML_WHEEL``: the shipped wheel, relative to the job dir; else
#: ``$VIBEML_INSTALL``: a requirement of the user's own build) it waits, at most ``$VIBEML_INPUT_WAIT``
#: seconds, for the uploaded inputs (``inputs/.complete``), installs that together with the lock's pinned
#: requirements (``inputs/requirements.txt``) in one resolve (uv when the machine has it, else pip),
#: destroys the instance if either fails (nothing else would), then execs the runner from what it installed.
ONSTART = (
    'export VIBEML_ONSTART_AT="$(date +%s)"; PY="${VIBEML_REMOTE_PYTHON:-python3}"; '
    'D="${VIBEML_REMOTE_DIR:-vibeml-job}"; case "$D" in "~/"*) D="$HOME/${D#??}";; esac; '
    'gave_up() { echo "@@vibeml-runner {\\"phase\\": \\"gave-up\\", \\"reason\\": \\"$1\\"}"; '
    'for i in 1 2 3 4 5; do "$PY" -c \'import os,urllib.request as u;e=os.environ;u.urlopen(u.Request('
    'e["VIBEML_VAST_API"].rstrip("/")+"/api/v0/instances/"+e["CONTAINER_ID"]+"/",method="DELETE",'
    'headers={"Authorization":"Bearer "+e["CONTAINER_API_KEY"]}),timeout=60)\' && exit 1; sleep 10; done; '
    "exit 1; }; "
    'if [ -n "${VIBEML_WHEEL:-}${VIBEML_INSTALL:-}" ]; then '
    'W="${VIBEML_INPUT_WAIT:-1800}"; W=$(( ${W%%.*} * 2 )); '
    'while [ ! -e "$D/inputs/.complete" ]; do W=$((W-1)); [ "$W" -lt 0 ] && gave_up "the inputs were never uploaded"; '
    "sleep 0.5; done; "
    'if [ -n "${VIBEML_WHEEL:-}" ]; then set -- "$D/$VIBEML_WHEEL"; else set -- "$VIBEML_INSTALL"; fi; '
    "export PIP_BREAK_SYSTEM_PACKAGES=1 UV_BREAK_SYSTEM_PACKAGES=1; "
    'if command -v uv >/dev/null 2>&1; then uv pip install -q --python "$PY" -r "$D/inputs/requirements.txt" "$@"; '
    'else "$PY" -m pip install -q -r "$D/inputs/requirements.txt" "$@"; fi || gave_up "pip install failed"; '
    "fi; "
    'exec "$PY" -m vibeml.remote'
)

#: Where the shipped wheel and the pinned requirements land under the job dir (the onstart's paths).
REQUIREMENTS_FILE = "inputs/requirements.txt"
WHEEL_DIR = "inputs"


class VastSupervisor(Supervisor):
    """The supervisor on a Vast.ai instance (see the module docstring).

    Args:
        job, env, clock, sleep, out, wall: As for :class:`~vibeml.remote.supervisor.Supervisor`.
        destroy: Destroys this instance (default: through the Vast API with the instance key).
        read_bill: Returns this instance as the API shows it (``dph_total``, ``start_date``; default:
            ``show_instance`` with the instance key); may raise.
    """

    reads_bill = True

    def __init__(
        self,
        job: RemoteJob,
        env: Mapping[str, str],
        *,
        destroy: Callable[[], bool] | None = None,
        read_bill: Callable[[], Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(job, env, **kwargs)
        self._destroy = destroy or self._destroy_via_api
        self._bill_reader = read_bill

    def boot_seconds(self) -> float:
        """Run time spent before this process started (the onstart's install), from ``VIBEML_ONSTART_AT``."""
        try:
            boot = time.time() - float(self.env.get("VIBEML_ONSTART_AT") or "nan")
        except ValueError:
            return 0.0
        return boot if 0.0 <= boot <= 86_400.0 else 0.0

    def prepare(self) -> None:
        if self._destroy == self._destroy_via_api:
            import vibeml.vast  # noqa: F401 - imported now so the final destroy is not late by an import

    def read_bill(self) -> Mapping[str, Any]:
        if self._bill_reader is not None:
            return self._bill_reader()
        from vibeml.vast import VastAI

        iid, key, url = (self.env.get(k, "") for k in ("CONTAINER_ID", "CONTAINER_API_KEY", "VIBEML_VAST_API"))
        if not iid.isdigit() or not key or not url:
            raise LookupError("CONTAINER_ID, CONTAINER_API_KEY or VIBEML_VAST_API is missing")
        timeout = min(30.0, max(2.0, self.bill_every))
        with VastAI(api_key=key, server_url=url, retry=2, timeout=timeout, quiet=True) as vast:
            return vast.show_instance(int(iid))

    def give_up(self) -> int:
        return 0 if self._destroy_self() else 1  # nothing to collect

    def end(self) -> int:
        self._linger()
        if self._terminated.is_set():
            self._save(force=True)
            return 143
        return 0 if self._destroy_self() else 1

    def _linger(self) -> None:
        marker = self.root / COLLECTED_MARKER
        until = self.clock() + self.linger
        self.say("linger", seconds=round(min(self.linger, max(0.0, self.remaining())), 1))
        while not marker.exists() and not self._terminated.is_set():
            left = min(self.remaining(), until - self.clock())  # remaining() keeps the reserve for the destroy
            if left <= 0:
                break
            self._save()
            self.sleep(min(0.2, max(0.01, left)))
        self._save(force=True)

    def _destroy_self(self) -> bool:
        self._bill_done.set()
        self.say("destroying")
        try:
            return self._destroy()
        except Exception as exc:  # never a traceback with a URL in it; the message is masked by the client
            self.say("destroy-failed", error=type(exc).__name__)
            return False

    def _destroy_via_api(self) -> bool:
        return destroy_own_instance(self.env, self.say, self.sleep, self._terminated.is_set)


def destroy_own_instance(
    env: Mapping[str, str],
    say: Callable[..., None],
    sleep: Callable[[float], Any] = time.sleep,
    cancelled: Callable[[], bool] = lambda: False,
) -> bool:
    """Destroy the instance this runs on (``CONTAINER_ID``) with its instance key; stop it as a last
    resort. Returns whether the destroy was accepted."""
    from vibeml.vast import VastAI, VastNotFoundError

    iid = env.get("CONTAINER_ID", "")
    key = env.get("CONTAINER_API_KEY", "")
    url = env.get("VIBEML_VAST_API", "")
    if not iid.isdigit() or not key or not url:
        say("destroy-failed", error="CONTAINER_ID, CONTAINER_API_KEY or VIBEML_VAST_API is missing")
        return False

    def once() -> bool:
        with contextlib.suppress(VastNotFoundError):  # already gone counts
            vast.destroy_instance(int(iid))
        return True

    def note(exc: BaseException, attempt: int, delay: float) -> None:
        say("destroy-retry", attempt=attempt, error=type(exc).__name__)
        if cancelled():
            raise _Cancelled

    with VastAI(api_key=key, server_url=url, retry=5, timeout=30.0, quiet=True) as vast:
        try:  # 8 rounds (each with the client's 5 HTTP attempts), 1 s × 2ⁿ⁻¹ apart, at most 60 s
            return retry_with_backoff(
                max_attempts=8,
                base_delay=1.0,
                backoff=2.0,
                max_delay=60.0,
                jitter=0.0,
                retry_on=(Exception,),
                sleep=sleep,
                on_retry=note,
            )(once)()
        except _Cancelled:
            return False
        except Exception as exc:
            say("destroy-retry", attempt=8, error=type(exc).__name__)
            with contextlib.suppress(Exception):
                vast.stop_instance(int(iid))  # storage-only billing beats GPU billing
    say("destroy-failed", error="the API did not accept the destroy")
    return False


class _Cancelled(Exception):
    """The runner was told to stop while it waited to retry a destroy."""


SUPERVISOR = VastSupervisor
