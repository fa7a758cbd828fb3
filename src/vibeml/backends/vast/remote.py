"""The program that runs on a rented Vast.ai instance: ``python -m vibeml.backends.vast.remote``.

The instance's onstart (:data:`ONSTART`, fixed text, no user string ever in it) waits for the uploaded
inputs, installs the shipped VibeML wheel (or the user's own build) with the lock's pinned requirements,
and execs this runner from the installed package, so it may import VibeML's light modules (exceptions,
safe_paths; ``vibeml.vast`` once the run starts). Everything job-specific arrives as DATA in the environment:

* ``VIBEML_JOB``: the payload (zlib + base64 JSON, see :func:`encode_payload`): the trainer module, its
  JSON config with paths relative to the job directory, extra environment, which inputs to wait for;
* ``VIBEML_REMOTE_DIR``: the job directory (relative = under the onstart's working directory);
* ``VIBEML_MAX_RUNTIME_SECONDS``: the hard budget in seconds of run time (max_cost / dph_total, less a margin);
* ``VIBEML_MAX_COST_USD``: the cap in dollars; the runner reads the instance's bill (``show_instance`` with
  the instance key: ``dph_total``, ``start_date``) every ``VIBEML_BILL_POLL_SECONDS`` (default 60, clamped
  to 1–900) and turns the money left into seconds left at the *observed* rate, so a machine that bills
  faster than its quote still stops under the cap; an API failure leaves the time budget (and the last
  reading, counted down at its rate) in charge and is reported in a ``bill`` line;
* ``VIBEML_RESERVE_SECONDS``: run time kept after the linger for the destroy to land (default 30, at most
  a quarter of the budget);
* ``VIBEML_STOP_GRACE_SECONDS``, ``VIBEML_LINGER_SECONDS``, ``VIBEML_INPUT_WAIT``: timings (the budget and
  the grace carry the names the SkyPilot task uses; the previous release's ``VIBEML_MAX_RUNTIME`` and
  ``VIBEML_TERM_GRACE`` are still read when the new names are absent);
* ``VIBEML_VAST_API``: the API base URL; with Vast's own ``CONTAINER_ID`` and ``CONTAINER_API_KEY``
  (an instance-scoped key; the user's key never reaches the machine) the runner destroys its instance;
* ``VIBEML_LOG_MIRROR``: a file the output is copied to as well (``/proc/1/fd/1`` on Vast, so that the
  lines reach the container log that the logs API serves); empty = none.

Timeline, with B = the budget, g = the grace and R = the reserve (seconds of run time, counted from the
onstart's start so the install is included, and kept across restarts in ``runner_state.json`` so a
preempted and restarted instance does not get a fresh budget). "Left" is the sooner of B − R − used and,
once the bill has been read, (max_cost − accrued) / dph_total − R − time since that reading:

1. wait for the uploaded inputs (``inputs/.complete``), at most ``VIBEML_INPUT_WAIT`` (the onstart already
   waited when it installed VibeML from them); run the workflow's fixed setup steps (import checks), once
   per disk;
2. run the trainer with ``max_runtime_seconds`` ≤ left − 2g (it checkpoints and stops by itself), send it
   SIGTERM when g is left (checkpoint and stop), SIGKILL when g/4 is left; a ``STOP`` file from the
   client asks for the same graceful stop;
3. linger until the client has collected the artifacts (``.collected``), the linger time has passed or
   nothing is left;
4. destroy the instance through the API (retried; a stop as the last resort), with R still in hand.

A SIGTERM from the platform (preemption, stop, destroy) is forwarded to the trainer, which checkpoints;
the runner then exits without destroying anything, and resumes from the checkpoint when the instance
runs again. Progress lines: the trainer's ``@@vibeml-event`` lines plus the runner's own
``@@vibeml-runner {json}`` lines (``start``, ``inputs-ready``, ``trainer-start``, ``bill``, ``stopping``,
``finished``, ``interrupted``, ``gave-up``, ``destroying``). A ``bill`` line is ``{"ok": true, "accrued": $,
"rate": $/h, "cap": $, "remaining": seconds until the money runs out at that rate, "using": "bill"|"time"}``
(which clock ends the run) or ``{"ok": false, "error": <exception type>, "using": "time"|"time+last-bill"}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from vibeml.exceptions import retry_with_backoff
from vibeml.safe_paths import atomic_write_bytes
from vibeml.trainer.events import ECHO_PREFIX, TERMINAL_EVENTS, parse_event

__all__ = [
    "COLLECTED_MARKER",
    "INPUTS_MARKER",
    "ONSTART",
    "REQUIREMENTS_FILE",
    "RUNNER_PREFIX",
    "STOP_MARKER",
    "Runner",
    "decode_payload",
    "destroy_own_instance",
    "encode_payload",
    "main",
    "parse_runner_lines",
]

RUNNER_PREFIX = "@@vibeml-runner "
INPUTS_MARKER = "inputs/.complete"
COLLECTED_MARKER = ".collected"
STOP_MARKER = "STOP"
STATE_FILE = "runner_state.json"
#: Bounds of ``VIBEML_BILL_POLL_SECONDS``: more often than every second the API rate-limits; less often than
#: every 15 minutes a machine that bills fast can run far past its cap between two readings.
BILL_POLL_RANGE = (1.0, 900.0)
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PAYLOAD_VERSION = "v1:"

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
    'exec "$PY" -m vibeml.backends.vast.remote'
)

#: Where the shipped wheel and the pinned requirements land under the job dir (the onstart's paths).
REQUIREMENTS_FILE = "inputs/requirements.txt"
WHEEL_DIR = "inputs"


def encode_payload(payload: Mapping[str, Any]) -> str:
    """JSON → zlib → urlsafe base64, prefixed with a version tag (fits one environment variable)."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return _PAYLOAD_VERSION + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_payload(text: str) -> dict[str, Any]:
    """Inverse of :func:`encode_payload`.

    Raises:
        ValueError: Not a payload this version writes.
    """
    if not text.startswith(_PAYLOAD_VERSION):
        raise ValueError("VIBEML_JOB is not a VibeML v1 payload")
    data = json.loads(zlib.decompress(base64.urlsafe_b64decode(text[len(_PAYLOAD_VERSION) :].encode("ascii"))))
    if not isinstance(data, dict):
        raise ValueError("VIBEML_JOB does not hold a JSON object")
    return data


def parse_runner_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The runner's own ``@@vibeml-runner`` records in a log, in order."""
    out = []
    for line in lines:
        idx = line.find(RUNNER_PREFIX)
        if idx < 0:
            continue
        try:
            obj = json.loads(line[idx + len(RUNNER_PREFIX) :])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("phase"), str):
            out.append(obj)
    return out


def _float(env: Mapping[str, str], name: str, default: float, old: str = "") -> float:
    try:
        value = float(env.get(name) or (env.get(old) if old else None) or default)
    except ValueError:
        return default
    return value if value == value and value >= 0 else default  # NaN/negative → default


class Runner:
    """One run of the on-instance program (see the module docstring).

    Args:
        env: The environment (``os.environ``).
        clock: Monotonic seconds.
        sleep: Waits.
        out: Where lines go (stdout).
        destroy: Destroys this instance (default: through the Vast API with the instance key).
        read_bill: Returns this instance as the API shows it (``dph_total``, ``start_date``; default:
            ``show_instance`` with the instance key); may raise.
        wall: Unix time (for the bill's ``start_date``).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        out: IO[str] | None = None,
        destroy: Callable[[], bool] | None = None,
        read_bill: Callable[[], Mapping[str, Any]] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.env = dict(env)
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.out = out or sys.stdout
        self.payload = decode_payload(self.env.get("VIBEML_JOB", ""))
        module = str(self.payload.get("module") or "vibeml.trainer")
        if not _MODULE.match(module):
            raise ValueError("the payload's trainer module is not a dotted module name")
        self.module = module
        try:  # trainer processes (one per GPU; torchrun when more than one)
            self.processes = max(1, min(512, int(self.payload.get("nproc_per_node") or 1)))
        except (TypeError, ValueError):
            raise ValueError("the payload's nproc_per_node is not a whole number") from None
        root = Path(self.env.get("VIBEML_REMOTE_DIR") or "vibeml-job").expanduser()
        self.root = root if root.is_absolute() else Path.cwd() / root
        self.budget = _float(self.env, "VIBEML_MAX_RUNTIME_SECONDS", 3600.0, old="VIBEML_MAX_RUNTIME")
        self.grace = min(_float(self.env, "VIBEML_STOP_GRACE_SECONDS", 120.0, old="VIBEML_TERM_GRACE"), self.budget / 4)
        self.linger = _float(self.env, "VIBEML_LINGER_SECONDS", 1800.0)
        self.input_wait = _float(self.env, "VIBEML_INPUT_WAIT", 1800.0)
        self.reserve = min(_float(self.env, "VIBEML_RESERVE_SECONDS", 30.0), self.budget / 4)
        cap = _float(self.env, "VIBEML_MAX_COST_USD", 0.0)
        self.max_cost = cap if math.isfinite(cap) else 0.0  # 0: no money cap, the time budget alone
        lo, hi = BILL_POLL_RANGE
        self.bill_every = min(max(_float(self.env, "VIBEML_BILL_POLL_SECONDS", 60.0), lo), hi)
        self._read_bill = read_bill or self._bill_via_api
        self._money_end: float | None = None  # clock time the money runs out at the last observed rate
        self._bill_done = threading.Event()
        self._destroy = destroy or self._destroy_via_api
        self._lock = threading.Lock()
        self._terminated = threading.Event()
        self._child: subprocess.Popen[str] | None = None
        self._last_event: str | None = None
        self._mirror: IO[str] | None = None
        self._t0 = clock()
        self._last_save = -1e9
        self.state: dict[str, Any] = {
            "runs": 0,
            "used_seconds": 0.0,
            "phase": "training",
            "rc": None,
            "bill_accrued": 0.0,  # the last bill reading ($) and the run time it was taken at
            "bill_used": 0.0,
        }

    # ------------------------------------------------------------------------------ plumbing

    def emit_line(self, line: str) -> None:
        """Write one line to stdout and the mirror; remember the trainer's last terminal event."""
        if line.startswith(ECHO_PREFIX):
            event = parse_event(line[len(ECHO_PREFIX) :])
            if isinstance(event, TERMINAL_EVENTS):
                self._last_event = event.event
        with self._lock:
            for stream in (self.out, self._mirror):
                if stream is None:
                    continue
                try:
                    stream.write(line + "\n")
                    stream.flush()
                except (OSError, ValueError):
                    if stream is self._mirror:
                        self._mirror = None

    def say(self, phase: str, **fields: Any) -> None:
        record = {"phase": phase, "time": round(time.time(), 3), "run": self.state.get("runs"), **fields}
        self.emit_line(RUNNER_PREFIX + json.dumps(record, separators=(",", ":")))

    def used(self) -> float:
        return float(self.state["used_seconds"]) + (self.clock() - self._t0)

    def remaining(self) -> float:
        """Seconds until the destroy must start (the reserve R kept for it): the time budget's or, once the
        bill has been read, the money's, whichever ends sooner."""
        return min(self._time_left(), self._money_left()) - self.reserve

    def _time_left(self) -> float:
        return self.budget - self.used()

    def _money_left(self) -> float:
        end = self._money_end
        return math.inf if end is None else end - self.clock()

    def _binding(self) -> str:
        """Which clock ends the run: ``bill`` (the money at the observed rate) or ``time`` (the budget)."""
        return "bill" if self._money_left() < self._time_left() else "time"

    # ------------------------------------------------------------------------------ the bill

    def poll_bill(self) -> bool:
        """Read the instance's bill once and move the money deadline; returns whether the reading was usable.

        accrued = (now − ``start_date``) × ``dph_total`` (Vast bills storage from the creation and the GPU
        from running, so this errs high), and never less than the last reading plus the run time since, at
        this rate (an instance clock behind Vast's, a ``start_date`` reset by a restart). The money left
        becomes seconds at this *observed* rate. A failed reading changes nothing: the time budget, and the
        last good reading counted down at its rate, stay in charge; a ``bill`` line says so (the error's
        type only: no URL, no key).
        """
        if self.max_cost <= 0:
            return False
        try:
            record = self._read_bill()
            rate = float(record["dph_total"])
            start = float(record["start_date"])
            if not (math.isfinite(rate) and rate > 0 and math.isfinite(start)):
                raise ValueError("no usable dph_total/start_date")
        except Exception as exc:  # any failure: keep running on the time clock
            using = "time" if self._money_end is None else "time+last-bill"
            self.say("bill", ok=False, error=type(exc).__name__, using=using)
            return False
        now, used = self.clock(), self.used()
        since_start = max(0.0, self.wall() - start)
        carried = (
            float(self.state.get("bill_accrued") or 0.0)
            + max(0.0, used - float(self.state.get("bill_used") or 0.0)) * rate / 3600.0
        )
        accrued = max(since_start * rate / 3600.0, carried)
        left = (self.max_cost - accrued) / rate * 3600.0
        self._money_end = now + left
        self.state.update(bill_accrued=round(accrued, 6), bill_used=round(used, 3))
        self.say(
            "bill",
            ok=True,
            accrued=round(accrued, 6),
            rate=round(rate, 6),
            cap=self.max_cost,
            remaining=round(left, 1),
            using=self._binding(),
        )
        return True

    def _bill_loop(self) -> None:
        while not self._bill_done.is_set():
            self.poll_bill()
            self._bill_done.wait(self.bill_every)

    def _bill_via_api(self) -> Mapping[str, Any]:
        from vibeml.vast import VastAI

        iid, key, url = (self.env.get(k, "") for k in ("CONTAINER_ID", "CONTAINER_API_KEY", "VIBEML_VAST_API"))
        if not iid.isdigit() or not key or not url:
            raise LookupError("CONTAINER_ID, CONTAINER_API_KEY or VIBEML_VAST_API is missing")
        timeout = min(30.0, max(2.0, self.bill_every))
        with VastAI(api_key=key, server_url=url, retry=2, timeout=timeout, quiet=True) as vast:
            return vast.show_instance(int(iid))

    def _save(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_save < 2.0:
            return
        self._last_save = now
        data = dict(self.state, used_seconds=round(self.used(), 3))
        with contextlib.suppress(OSError):
            atomic_write_bytes(self.root / STATE_FILE, json.dumps(data).encode("utf-8"))

    def _load(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.root / STATE_FILE).read_text(encoding="utf-8"))
            if isinstance(data, dict):
                self.state.update(data)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._terminated.set()
        child = self._child
        if child is not None and child.poll() is None:
            with contextlib.suppress(OSError):
                child.send_signal(signal.SIGTERM)

    def _open_mirror(self) -> None:
        path = self.env.get("VIBEML_LOG_MIRROR", "")
        if path and os.getpid() != 1:
            try:
                self._mirror = open(path, "a", encoding="utf-8")  # kept open for the whole run
            except OSError:
                self._mirror = None

    # ------------------------------------------------------------------------------ phases

    def run(self) -> int:
        """The whole timeline; returns the process exit code."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._load()
        self.state["runs"] = int(self.state.get("runs") or 0) + 1
        self.state["used_seconds"] = float(self.state.get("used_seconds") or 0.0) + self._boot_seconds()
        self._t0 = self.clock()
        self._save(force=True)
        self._open_mirror()
        if self._destroy == self._destroy_via_api:
            import vibeml.vast  # noqa: F401 - imported now so the final destroy is not late by an import
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)
        if self.max_cost > 0:
            threading.Thread(target=self._bill_loop, name="vibeml-bill", daemon=True).start()
        self.say("start", remaining=round(self.remaining(), 1), phase_before=self.state.get("phase"))
        if self.state.get("phase") != "finished":
            if not self._wait_inputs() or not self._setup():
                if self._terminated.is_set():
                    self.say("interrupted")
                    self._save(force=True)
                    return 143
                self._finish(None, "gave-up")
                return 0 if self._destroy_self() else 1  # nothing to collect
            else:
                rc, why = self._train()
                if why == "platform" and self._last_event != "done":
                    self.say("interrupted", rc=rc)
                    self._save(force=True)
                    return 143
                self._finish(rc, why)
        self._linger()
        if self._terminated.is_set():
            self._save(force=True)
            return 143
        return 0 if self._destroy_self() else 1

    def _boot_seconds(self) -> float:
        """Run time spent before this process started (the onstart's install), from ``VIBEML_ONSTART_AT``."""
        try:
            boot = time.time() - float(self.env.get("VIBEML_ONSTART_AT") or "nan")
        except ValueError:
            return 0.0
        return boot if 0.0 <= boot <= 86_400.0 else 0.0

    def _finish(self, rc: int | None, why: str) -> None:
        self.state.update(phase="finished", rc=rc, outcome=self._last_event, why=why)
        self._save(force=True)
        self.say("finished", rc=rc, outcome=self._last_event, why=why)

    def _wait_inputs(self) -> bool:
        if not self.payload.get("inputs"):
            return True
        marker = self.root / INPUTS_MARKER
        deadline = self.clock() + self.input_wait
        while not marker.exists():
            if self._terminated.is_set():
                return False
            if self.remaining() <= self.grace or self.clock() >= deadline:
                self.say("gave-up", reason="the inputs were never uploaded")
                return False
            self._save()
            self.sleep(0.2)
        self.say("inputs-ready")
        return True

    def _setup(self) -> bool:
        """The workflow's fixed setup steps (install its pinned requirements, check imports), once per disk."""
        commands = [str(c) for c in self.payload.get("setup") or ()]
        if not commands or self.state.get("setup_done"):
            return True
        (self.root / "requirements.txt").write_text(
            "".join(f"{r}\n" for r in self.payload.get("requirements") or ()), encoding="utf-8"
        )
        env = self._trainer_env()
        env["PY"] = sys.executable
        shell = shutil.which("bash") or "/bin/sh"
        self.say("setup", steps=len(commands))
        for command in commands:
            rc = self._supervise([shell, "-c", command], env)[0]
            if rc != 0:
                if not self._terminated.is_set():
                    self.say("gave-up", reason=f"setup step failed (exit {rc}): {command[:200]}")
                return False
        self.state["setup_done"] = True
        self._save(force=True)
        return True

    def _config_path(self) -> Path:
        config = dict(self.payload.get("config") or {})
        for field in self.payload.get("relative_fields") or ():
            value = config.get(field)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                config[field] = str(self.root / value)
        soft = self.remaining() - 2 * self.grace
        current = config.get("max_runtime_seconds")
        if isinstance(current, (int, float)) and current > 0:
            soft = min(soft, float(current))
        config["max_runtime_seconds"] = round(max(1.0, soft), 1)
        path = self.root / "config.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    def _trainer_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k not in ("CONTAINER_API_KEY", "VIBEML_JOB", "VIBEML_INSTALL")}
        extra = self.payload.get("env") or {}
        env.update({str(k): str(v) for k, v in extra.items() if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(k))})
        env["VIBEML_ECHO_EVENTS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.emit_line(line.rstrip("\n"))

    def _train(self) -> tuple[int | None, str]:
        """Run the trainer under the budget; returns (exit code, why it ended)."""
        from vibeml.launch import Rendezvous, trainer_command

        rdzv = Rendezvous(nproc_per_node=self.processes)
        argv = trainer_command(sys.executable, self._config_path(), rdzv, self.module)
        return self._supervise(argv, self._trainer_env(), announce="trainer-start")

    def _supervise(self, argv: list[str], env: dict[str, str], announce: str | None = None) -> tuple[int | None, str]:
        """Run a child with its output in the log: SIGTERM at B − g (or on a STOP request), SIGKILL at B − g/4.

        Returns (exit code, why): ``exit``, ``budget``, ``stop-requested``, ``platform`` (we were signalled)
        or ``gave-up`` (it could not start).
        """
        try:
            child = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            self.say("gave-up", reason=f"could not start {argv[0]}: {exc}")
            return None, "gave-up"
        self._child = child
        if announce:
            self.say(announce, pid=child.pid, remaining=round(self.remaining(), 1))
        assert child.stdout is not None
        pump = threading.Thread(target=self._pump, args=(child.stdout,), daemon=True)
        pump.start()
        why = "exit"
        termed = killed = False
        while child.poll() is None:
            if self._terminated.is_set():
                why = "platform"
            rem = self.remaining()
            stop_asked = (self.root / STOP_MARKER).exists()
            if not termed and (rem <= self.grace or stop_asked):
                why = "budget" if rem <= self.grace else "stop-requested"
                self.say("stopping", reason=why, remaining=round(rem, 1), by=self._binding())
                with contextlib.suppress(OSError):
                    child.send_signal(signal.SIGTERM)
                termed = True
            if not killed and rem <= self.grace / 4:
                self.say("killing", remaining=round(rem, 1))
                with contextlib.suppress(OSError):
                    child.kill()
                killed = True
            self._save()
            self.sleep(0.1)
        pump.join(timeout=10)
        self._child = None
        if self._terminated.is_set():
            why = "platform"
        return child.returncode, why

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


def main() -> int:
    """Entry point on the instance."""
    try:
        runner = Runner(os.environ)
    except (ValueError, OSError) as exc:

        def say(phase: str, **fields: Any) -> None:
            print(RUNNER_PREFIX + json.dumps({"phase": phase, **fields}), flush=True)

        say("gave-up", reason=f"bad job payload: {exc}")
        destroy_own_instance(os.environ, say)  # nothing will run here: stop the billing
        return 2
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
