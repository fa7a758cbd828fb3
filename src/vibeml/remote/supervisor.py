"""The remote supervisor: the budget clock, the trainer under it, and the provider's end of the run.

:class:`Supervisor` is the part every provider shares; :mod:`vibeml.backends.vast.remote` and
:mod:`vibeml.backends.skypilot.remote` add their own start and end (which time before the supervisor was
billed, whether the machine can read its own bill, what happens after training). :func:`main` picks one by
the payload's ``provider``.

Timeline, with B = ``budget.max_runtime_seconds`` (0: no limit), g = the stop grace and R = the reserve
(seconds of run time, kept across restarts in ``runner_state.json`` under ``state_dir``, so a restarted
or recovered machine does not get a fresh budget). "Left" is the sooner of B − R − used and, once the bill
has been read, (max_cost − accrued) / rate − R − time since that reading:

1. wait for the uploaded inputs (``inputs/.complete``) and run the workflow's fixed setup steps, once per disk;
2. with no time left to train (left ≤ g) emit the trainer contract's ``stopped`` event and end; otherwise run
   the trainer (:mod:`vibeml.launch`: one process, or ``torch.distributed.run`` across GPUs and nodes) with
   ``max_runtime_seconds`` ≤ left − 2g, so it checkpoints and stops by itself; SIGTERM when g is left (or a
   ``STOP`` file asks), SIGKILL when g/4 is left;
3. the provider's end (Vast: linger for the client's copy, then destroy the instance with R in hand;
   SkyPilot: exit with the trainer's code, SkyPilot's autodown or the client tears the cluster down).

A SIGTERM from the platform (preemption, cancel) is forwarded to the trainer, which checkpoints; the
supervisor then exits 143 without ending the run, and resumes from the checkpoint when it runs again.
Progress lines: the trainer's ``@@vibeml-event`` lines plus the supervisor's ``@@vibeml-runner {json}``
lines (``start``, ``inputs-ready``, ``setup``, ``trainer-start``, ``bill``, ``stopping``, ``killing``,
``finished``, ``interrupted``, ``gave-up``, and the provider's own).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from vibeml.exceptions import ConfigurationError
from vibeml.launch import Rendezvous, trainer_command
from vibeml.remote.payload import PAYLOAD_ENV, RemoteJob, decode_payload
from vibeml.safe_paths import atomic_write_bytes
from vibeml.trainer.events import ECHO_PREFIX, TERMINAL_EVENTS, StoppedEvent, parse_event

__all__ = [
    "COLLECTED_MARKER",
    "INPUTS_MARKER",
    "PROVIDERS",
    "RUNNER_PREFIX",
    "STATE_FILE",
    "STOP_MARKER",
    "Supervisor",
    "main",
    "parse_runner_lines",
    "provider_class",
]

RUNNER_PREFIX = "@@vibeml-runner "
INPUTS_MARKER = "inputs/.complete"
COLLECTED_MARKER = ".collected"
STOP_MARKER = "STOP"
STATE_FILE = "runner_state.json"
#: Providers and the module that holds each one's :class:`Supervisor` (imported only when used).
PROVIDERS = {"vast": "vibeml.backends.vast.remote", "skypilot": "vibeml.backends.skypilot.remote"}


def parse_runner_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The supervisor's ``@@vibeml-runner`` records among log lines (anything else is ignored)."""
    out: list[dict[str, Any]] = []
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


def _seconds(value: float) -> float | None:
    """A number of seconds for a JSON line (``None`` = unbounded)."""
    return round(value, 1) if math.isfinite(value) else None


class Supervisor:
    """One run of the supervisor on a machine (see the module docstring); providers subclass it.

    Args:
        job: The payload.
        env: The environment (``os.environ``): the provider's variables and ``VIBEML_REMOTE_DIR``.
        clock: Monotonic seconds.
        sleep: Waits.
        out: Where lines go (stdout).
        wall: Unix time.
    """

    #: Whether this provider's machine can read its own bill (then ``budget.max_cost_usd`` is enforced here).
    reads_bill = False

    def __init__(
        self,
        job: RemoteJob,
        env: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        out: IO[str] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.job = job
        self.env = dict(env)
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.out = out or sys.stdout
        self.module = job.module
        root = Path(self.env.get("VIBEML_REMOTE_DIR") or "vibeml-job").expanduser()
        self.root = root if root.is_absolute() else Path.cwd() / root
        state = Path(job.state_dir).expanduser() if job.state_dir else Path()
        self.state_dir = state if state.is_absolute() else self.root / state
        b = job.budget
        self.budget = b.max_runtime_seconds if b.max_runtime_seconds > 0 else math.inf
        self.grace = min(b.stop_grace_seconds, self.budget / 4)
        self.reserve = min(b.reserve_seconds, self.budget / 4)
        self.linger = b.linger_seconds
        self.input_wait = b.input_wait_seconds
        self.max_cost = b.max_cost_usd or 0.0  # 0: no money cap here, the time budget alone
        self.bill_every = b.bill_poll_seconds
        self._money_end: float | None = None  # clock time the money runs out at the last observed rate
        self._bill_done = threading.Event()
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

    # ------------------------------------------------------------------------------ provider hooks

    def boot_seconds(self) -> float:
        """Billed run time before this process started (installs, provisioning) not yet counted."""
        return 0.0

    def read_bill(self) -> Mapping[str, Any]:
        """This machine's bill (``dph_total`` $/h, ``start_date`` Unix time); may raise."""
        raise LookupError("this provider's machine cannot read its own bill")

    def rendezvous(self) -> Rendezvous:
        """Where the trainer's processes are on this machine: one per GPU of the job (torchrun when > 1)."""
        return Rendezvous(nproc_per_node=self.job.gpus_per_node, master_port=self.job.master_port)

    def trainer_argv(self, config: Path) -> list[str]:
        """The trainer's command line on this machine (:func:`vibeml.launch.trainer_command`, the one launcher).

        Raises:
            ConfigurationError: The machine's GPU/node variables make no sense.
        """
        return trainer_command(sys.executable, config, self.rendezvous(), self.module)

    def give_up(self) -> int:
        """The run could not start (inputs never came, setup failed); returns the exit code."""
        return 1

    def end(self) -> int:
        """After training (or with nothing left to train): the provider's end of the run; the exit code."""
        rc = self.state.get("rc")
        if not isinstance(rc, int):
            return 0 if self.state.get("why") == "budget" else 1
        return 128 - rc if rc < 0 else rc  # killed by signal N: the shell's 128 + N

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
        """Seconds until training must be over (the reserve R kept for the teardown): the time budget's or,
        once the bill has been read, the money's, whichever ends sooner."""
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
        """Read the machine's bill once and move the money deadline; returns whether the reading was usable.

        accrued = (now − ``start_date``) × ``dph_total`` (errs high: storage bills from the creation), and
        never less than the last reading plus the run time since, at this rate (a machine clock behind the
        provider's, a ``start_date`` reset by a restart). The money left becomes seconds at this *observed*
        rate. A failed reading changes nothing: the time budget, and the last good reading counted down at
        its rate, stay in charge; a ``bill`` line says so (the error's type only: no URL, no key).
        """
        if self.max_cost <= 0:
            return False
        try:
            record = self.read_bill()
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

    def _save(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_save < 2.0:
            return
        self._last_save = now
        data = dict(self.state, used_seconds=round(self.used(), 3))
        with contextlib.suppress(OSError):
            atomic_write_bytes(self.state_dir / STATE_FILE, json.dumps(data).encode("utf-8"))

    def _load(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.state_dir / STATE_FILE).read_text(encoding="utf-8"))
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

    def prepare(self) -> None:
        """Before the clock starts: imports the end of the run needs (so it is not late by an import)."""

    def run(self) -> int:
        """The whole timeline; returns the process exit code."""
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self._load()
        self.state["runs"] = int(self.state.get("runs") or 0) + 1
        self.state["used_seconds"] = float(self.state.get("used_seconds") or 0.0) + self.boot_seconds()
        self._t0 = self.clock()
        self._save(force=True)
        self._open_mirror()
        self.prepare()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)
        if self.max_cost > 0 and self.reads_bill:
            threading.Thread(target=self._bill_loop, name="vibeml-bill", daemon=True).start()
        self.say("start", remaining=_seconds(self.remaining()), phase_before=self.state.get("phase"))
        if self.state.get("phase") != "finished":
            if not self._wait_inputs() or not self._setup():
                if self._terminated.is_set():
                    self.say("interrupted")
                    self._save(force=True)
                    return 143
                self._finish(None, "gave-up")
                self._bill_done.set()
                return self.give_up()
            if self.remaining() <= self.grace:
                self._no_time_left()
            else:
                rc, why = self._train()
                if why == "platform" and self._last_event != "done":
                    self.say("interrupted", rc=rc)
                    self._save(force=True)
                    return 143
                self._finish(rc, why)
        return self.end()

    def _no_time_left(self) -> None:
        """The budget leaves no time to train: the trainer contract's ``stopped`` event, then the end."""
        left = self.remaining()
        self.say("stopping", reason="budget", remaining=_seconds(left), by=self._binding())
        event = StoppedEvent(time=round(self.wall(), 3), reason="max_runtime")
        self.emit_line(ECHO_PREFIX + event.model_dump_json(exclude_none=True))
        self._last_event = event.event
        self._finish(None, "budget")

    def _finish(self, rc: int | None, why: str) -> None:
        self.state.update(phase="finished", rc=rc, outcome=self._last_event, why=why)
        self._save(force=True)
        self.say("finished", rc=rc, outcome=self._last_event, why=why)

    def _wait_inputs(self) -> bool:
        if not self.job.inputs:
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
        """The workflow's fixed setup steps (check imports), once per disk."""
        commands = list(self.job.setup)
        if not commands or self.state.get("setup_done"):
            return True
        (self.root / "requirements.txt").write_text("".join(f"{r}\n" for r in self.job.requirements), encoding="utf-8")
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
        config = dict(self.job.config)
        for field in self.job.relative_fields:
            value = config.get(field)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                config[field] = str(self.root / value)
        soft = self.remaining() - 2 * self.grace
        current = config.get("max_runtime_seconds")
        if isinstance(current, (int, float)) and current > 0:
            soft = min(soft, float(current))
        if math.isfinite(soft):
            config["max_runtime_seconds"] = round(max(1.0, soft), 1)
        path = self.root / "config.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    #: Variables the trainer never sees: the instance key, the payload, the install spec.
    HIDDEN_FROM_TRAINER = ("CONTAINER_API_KEY", PAYLOAD_ENV, "VIBEML_INSTALL")

    def _trainer_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k not in self.HIDDEN_FROM_TRAINER}
        env.update(self.job.env)
        env["VIBEML_ECHO_EVENTS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.emit_line(line.rstrip("\n"))

    def _train(self) -> tuple[int | None, str]:
        """Run the trainer under the budget; returns (exit code, why it ended)."""
        try:
            argv = self.trainer_argv(self._config_path())
        except ConfigurationError as exc:
            self.say("gave-up", reason=f"cannot start the trainer: {exc.message}")
            return None, "gave-up"
        return self._supervise(argv, self._trainer_env(), announce="trainer-start")

    def _supervise(self, argv: list[str], env: dict[str, str], announce: str | None = None) -> tuple[int | None, str]:
        """Run a child with its output in the log: SIGTERM at left ≤ g (or on a STOP request), SIGKILL at g/4.

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
            self.say(announce, pid=child.pid, remaining=_seconds(self.remaining()), processes=_processes(argv))
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
                self.say("stopping", reason=why, remaining=_seconds(rem), by=self._binding())
                with contextlib.suppress(OSError):
                    child.send_signal(signal.SIGTERM)
                termed = True
            if not killed and rem <= self.grace / 4:
                self.say("killing", remaining=_seconds(rem))
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


def _processes(argv: list[str]) -> int:
    for arg in argv:
        if arg.startswith("--nproc_per_node="):
            return int(arg.split("=", 1)[1])
    return 1


def provider_class(provider: str) -> type[Supervisor]:
    """The provider's :class:`Supervisor` subclass (its module imported now)."""
    module = importlib.import_module(PROVIDERS[provider])
    cls = module.SUPERVISOR
    assert isinstance(cls, type) and issubclass(cls, Supervisor)
    return cls


def main(env: Mapping[str, str] | None = None) -> int:
    """Entry point on the machine: the payload from ``$VIBEML_JOB``, the provider's supervisor, the run."""
    env = os.environ if env is None else env
    try:
        job = decode_payload(env.get(PAYLOAD_ENV, ""))
    except ValueError as exc:
        print(RUNNER_PREFIX + json.dumps({"phase": "gave-up", "reason": f"bad job payload: {exc}"}), flush=True)
        if env.get("CONTAINER_ID") and env.get("CONTAINER_API_KEY"):  # a Vast instance: stop the billing
            from vibeml.backends.vast.remote import destroy_own_instance

            def say(phase: str, **fields: Any) -> None:
                print(RUNNER_PREFIX + json.dumps({"phase": phase, **fields}), flush=True)

            destroy_own_instance(env, say)
        return 2
    return provider_class(job.provider)(job, env).run()
