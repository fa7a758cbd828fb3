"""The local backend: the trainer runs as a detached process group on this machine.

The process outlives the CLI that started it (its own session), so killing the CLI loses nothing. Its
log and JSONL events live in the job's directory; status is reconciled from the process (is it alive,
is it still the same process?) and the event stream.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from vibeml.backends.base import Backend, Capabilities, Capability, LaunchChoice, write_handle_file
from vibeml.config._files import atomic_write_bytes
from vibeml.exceptions import BackendError, ConfigurationError
from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobProgress, LocalHandle, LocalHandleData, TrainerEnd, TrainingRequest
from vibeml.processes import process_alive, process_state
from vibeml.safe_paths import make_private_dir
from vibeml.settings import Settings
from vibeml.trainer.events import read_events
from vibeml.workflows.registry import TrainingProgram

__all__ = ["LocalBackend"]

LOG_FILENAME = "train.log"


class LocalBackend(Backend[LocalHandle]):
    """Runs the trainer on this machine (CPU, or its GPUs when it has them). Costs nothing."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = "This machine: free, good for small models and trying things out."
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=Capability(supported=False, reason="your own machine cannot be preempted or bid on"),
        multi_gpu=Capability(
            supported=True, reason="torchrun: one trainer process per GPU of this machine (ddp or fsdp)"
        ),
        multi_node=Capability(supported=False, reason="the local backend runs on one machine"),
        artifacts=Capability(supported=True),
        gpu_selection=Capability(
            supported=False, reason="it uses whatever this machine has; choose a cloud backend to pick a GPU"
        ),
        budget_cap=Capability(supported=True, reason="local runs cost nothing"),
        free=True,
    )
    clouds: ClassVar[tuple[str, ...] | None] = ("local",)
    handle_type: ClassVar[type[LocalHandle]] = LocalHandle

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def check(self, request: TrainingRequest) -> None:
        super().check(request)
        from vibeml.workflows.registry import get_workflow

        workflow = get_workflow(request.workflow)
        if request.gpu_count > 1:
            self._check_processes(request)
        if workflow.requires_cuda and not self._trainer_sees_cuda():
            raise ConfigurationError(
                f"the {workflow.name} workflow runs only on an NVIDIA GPU, and the trainer's Python on this "
                "machine sees none",
                {"workflow": workflow.name, "backend": self.name, "python": self.settings.python},
                "Choose a workflow that runs on the CPU (e.g. --workflow trl-lora), or a cloud backend "
                "(--backend vast or --backend skypilot) to rent an NVIDIA GPU.",
            )

    def _check_processes(self, request: TrainingRequest) -> None:
        """``--gpu-count N``: this machine's GPUs, or (none) CPU processes when ``VIBEML_CPU_PROCESSES`` allows."""
        from vibeml.launch import CPU_PROCESSES_ENV
        from vibeml.workflows.registry import get_workflow, resolve_strategy

        n = request.gpu_count
        resolve_strategy(get_workflow(request.workflow), request.strategy, n)  # the workflow can run it
        gpus = self._trainer_cuda_count()
        ctx = {"gpu_count": n, "gpus_here": gpus, "backend": self.name}
        if gpus >= n:
            return
        if gpus == 0 and n <= self.settings.cpu_processes:
            return  # CPU processes over gloo, as asked
        raise ConfigurationError(
            f"--gpu-count {n} needs {n} GPUs, and the trainer's Python on this machine sees {gpus}",
            ctx,
            f"Ask for at most {gpus} GPUs here, or a cloud backend (--backend vast or skypilot)."
            if gpus
            else f"Use --gpu-count 1, a cloud backend, or set {CPU_PROCESSES_ENV}={n} to train with {n} CPU "
            "processes (slow; for tests and trials).",
        )

    def _trainer_cuda_count(self) -> int:
        """How many CUDA devices the trainer's Python sees (asked in a child process; no torch there: 0)."""
        probe = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
        try:
            res = subprocess.run(
                [self.settings.python, "-c", probe],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return 0
        try:
            return int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else 0
        except (ValueError, IndexError):
            return 0

    def _trainer_sees_cuda(self) -> bool:
        """Does the trainer's Python (VIBEML_PYTHON, which may not be this one) see a CUDA device? Asked in a
        child process, so that this one imports no torch; no torch there counts as no."""
        probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"
        try:
            res = subprocess.run(
                [self.settings.python, "-c", probe],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.returncode == 0

    # ------------------------------------------------------------------------------------ launch

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> LocalHandle:
        make_private_dir(job_dir)
        config_path = job_dir / program.config_filename
        atomic_write_bytes(config_path, program.config_json().encode("utf-8"))  # 0600
        log_path = job_dir / LOG_FILENAME
        env = dict(os.environ)
        env.update(program.env)
        env.update(program.secret_env())  # in the process's environment only: never in a file
        env["PYTHONUNBUFFERED"] = "1"
        env["VIBEML_JOB_ID"] = job_id
        argv = program.argv(self.settings.python, config_path)
        try:
            with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=job_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    umask=0o077 if os.name == "posix" else -1,  # checkpoints and outputs: private
                )
        except OSError as exc:
            raise BackendError(
                f"could not start the trainer: {exc}",
                {"python": self.settings.python, "job_id": job_id},
                "Check that VIBEML_PYTHON (or this Python) exists and has `vibeml[train]` installed.",
            ) from exc
        self._children[proc.pid] = proc
        info = process_state(proc.pid)
        handle = LocalHandle(
            job_id=job_id,
            backend_job_id=str(proc.pid),
            job_dir=str(job_dir),
            data=LocalHandleData(
                pid=proc.pid,
                pgid=proc.pid,
                proc_start=info[1] if info else None,
                events_path=program.config.events_path,
                log_path=str(log_path),
                output_dir=program.config.output_dir,
                argv=tuple(argv),
            ),
        )
        # Beside the store: a launcher killed right now still leaves a way to find the process.
        write_handle_file(handle)
        return handle

    # ------------------------------------------------------------------------------------ status

    def _alive(self, handle: LocalHandle) -> bool:
        pid = handle.data.pid
        proc = self._children.get(pid)
        if proc is not None and proc.poll() is not None:
            self._children.pop(pid, None)
            return False
        return process_alive(pid, handle.data.proc_start)

    def status(self, handle: LocalHandle) -> JobProgress:
        handle = self.own(handle)
        alive = self._alive(handle)
        events_path = handle.data.events_path
        progress = progress_from_events(read_events(events_path), alive=alive)
        if progress.trainer_end is TrainerEnd.NO_FINAL_EVENT:
            last = self._last_log_line(handle)
            if last:
                progress = progress.model_copy(update={"error": f"{progress.error}. Last log line: {last}"})
        return progress

    def _last_log_line(self, handle: LocalHandle) -> str | None:
        for line in reversed(list(self._tail(Path(handle.data.log_path), 20))):
            if line.strip():
                return line.strip()[:300]
        return None

    # -------------------------------------------------------------------------------------- logs

    @staticmethod
    def _tail(path: Path, n: int | None) -> Iterator[str]:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines: Any = fh if n is None else deque(fh, maxlen=max(0, n))
                for line in lines:
                    yield line.rstrip("\n")
        except FileNotFoundError:
            return

    def logs(self, handle: LocalHandle, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        handle = self.own(handle)
        path = Path(handle.data.log_path)
        if not follow:
            yield from self._tail(path, tail)
            return
        yield from self._tail(path, tail)
        try:
            offset = path.stat().st_size
        except FileNotFoundError:
            offset = 0
        pending = ""
        while True:
            alive = self._alive(handle)
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                    offset = fh.tell()
            except FileNotFoundError:
                chunk = ""
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                yield from lines
            elif not alive:
                if pending:
                    yield pending
                return
            else:
                time.sleep(0.2)

    # -------------------------------------------------------------------------------------- stop

    def stop(self, handle: LocalHandle, grace_seconds: float = 30.0) -> None:
        handle = self.own(handle)
        if not self._alive(handle):
            return
        pgid = handle.data.pgid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise BackendError(f"not allowed to stop process group {pgid}: {exc}", {"job_id": handle.job_id}) from exc
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not self._alive(handle):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for _ in range(50):
            if not self._alive(handle):
                return
            time.sleep(0.1)

    # --------------------------------------------------------------------------------- artifacts

    def fetch_artifacts(self, handle: LocalHandle, dest: Path | None = None) -> Path:
        handle = self.own(handle)
        src = Path(handle.data.output_dir)
        if not src.exists():
            raise BackendError(
                f"the job has no artifacts at {src} yet",
                {"job_id": handle.job_id, "path": str(src)},
                "Artifacts appear when the job completes; check `vibeml status JOB`.",
            )
        if dest is None or Path(dest).resolve() == src.resolve():
            return src
        dest = Path(dest)
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return dest


if sys.platform == "win32":  # pragma: no cover - documented limitation
    raise ImportError("the local backend needs a POSIX system (process groups and signals)")
