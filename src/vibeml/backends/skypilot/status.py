"""SkyPilot → VibeML: status tables, event reconciliation, local commands (no SkyPilot import)."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vibeml.exceptions import BackendError
from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobProgress, JobStatus
from vibeml.trainer.events import TrainerEvent

__all__ = [
    "CLUSTER_JOB_STATUS",
    "GONE",
    "MANAGED_JOB_STATUS",
    "REQUEST_STATUS",
    "LineSink",
    "bucket_download_argv",
    "cluster_download_argv",
    "field",
    "is_sky_error",
    "reconcile",
    "run_command",
    "status_name",
]

S = JobStatus
#: ``sky.ManagedJobStatus`` → VibeML. RECOVERING (preempted, being relaunched) reads as provisioning.
MANAGED_JOB_STATUS: dict[str, JobStatus] = {
    "PENDING": S.PROVISIONING,
    "SUBMITTED": S.PROVISIONING,
    "STARTING": S.PROVISIONING,
    "RUNNING": S.RUNNING,
    "RECOVERING": S.PROVISIONING,
    "WINDING_DOWN": S.RUNNING,
    "CANCELLING": S.STOPPING,
    "CANCELLED": S.STOPPED,
    "SUCCEEDED": S.COMPLETED,
    "FAILED": S.FAILED,
    "FAILED_SETUP": S.FAILED,
    "FAILED_PRECHECKS": S.FAILED,
    "FAILED_NO_RESOURCE": S.FAILED,
    "FAILED_CONTROLLER": S.FAILED,
}
#: ``sky.JobStatus`` (a job on a cluster) → VibeML.
CLUSTER_JOB_STATUS: dict[str, JobStatus] = {
    "INIT": S.PROVISIONING,
    "PENDING": S.PROVISIONING,
    "SETTING_UP": S.PROVISIONING,
    "RUNNING": S.RUNNING,
    "SUCCEEDED": S.COMPLETED,
    "FAILED": S.FAILED,
    "FAILED_SETUP": S.FAILED,
    "FAILED_DRIVER": S.FAILED,
    "CANCELLED": S.STOPPED,
}
#: API request status (the launch request) → VibeML; None: finished, ask the job queue.
REQUEST_STATUS: dict[str, JobStatus | None] = {
    "PENDING": S.PROVISIONING,
    "WAITING": S.PROVISIONING,
    "RUNNING": S.PROVISIONING,
    "SUCCEEDED": None,
    "FAILED": S.FAILED,
    "CANCELLED": S.STOPPED,
}
GONE = ("ClusterDoesNotExist", "ClusterNotUpError")


def status_name(value: Any) -> str:
    """An enum member or a string → its upper-case name (``ManagedJobStatus.RUNNING`` → ``RUNNING``)."""
    raw = getattr(value, "value", value)
    return str(raw or "").upper()


def field(record: Any, key: str) -> Any:
    """A field of a SkyPilot response (pydantic model or dict)."""
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)


def is_sky_error(exc: BaseException, names: Iterable[str]) -> bool:
    """Is ``exc`` one of SkyPilot's exceptions by class name (no SkyPilot import needed)?"""
    wanted = set(names)
    return any(cls.__name__ in wanted for cls in type(exc).__mro__)


def reconcile(
    sky_status: JobStatus | None,
    events: Iterable[TrainerEvent],
    failure: str | None = None,
    *,
    cancelled: str = "cancelled",
) -> JobProgress:
    """SkyPilot's view of the job + the trainer's events → one ``JobProgress``.

    SkyPilot decides whether the job is still going; the trainer's terminal event says how it ended
    (a budget stop exits 0 with a ``stopped`` event → stopped, not completed). ``cancelled`` is the
    error of a stop that neither the trainer nor SkyPilot explained.
    """
    progress = progress_from_events(events, alive=True)
    said = progress.status if progress.status.is_terminal else None
    status = sky_status or S.PROVISIONING
    error = progress.error
    if status is S.COMPLETED:
        status = said or S.COMPLETED
    elif status is S.FAILED:
        if said in (S.STOPPED, S.COMPLETED):
            status = said
        else:
            error = progress.error or failure or "SkyPilot reports that the job failed; see `vibeml logs JOB`"
    elif status is S.STOPPED:
        error = progress.error or failure or cancelled
    else:
        error = None if said is None else error
    return progress.model_copy(update={"status": status, "error": error})


class LineSink(io.TextIOBase):
    """A text stream that hands complete lines to a callback (for ``sky.stream_and_get``)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._buf += s
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(line.rstrip("\r"))
        return len(s)

    def flush(self) -> None:
        pass


def run_command(argv: list[str]) -> None:
    """Run a local command (rsync, a bucket sync); a failure is a ``BackendError`` with its output."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:  # rsync / aws / gsutil not installed here
        raise BackendError(
            f"cannot run {argv[0]}: {exc.strerror or exc}",
            {"command": argv[0]},
            f"Install {argv[0]} on this machine, then run `vibeml status JOB` again.",
        ) from exc
    if proc.returncode != 0:
        raise BackendError(
            f"{argv[0]} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}",
            {"command": " ".join(argv[:2])},
        )


def bucket_download_argv(url: str, dest: Path) -> list[str]:
    """The local command that copies a bucket prefix to ``dest`` (an argv, no shell).

    SkyPilot's ``cloud_stores`` sync commands are written for its VMs (they install cloud CLIs into
    ``~`` and edit ``~/.bashrc``), so on the user's machine the cloud's own CLI is called directly.
    """
    if url.startswith("s3://"):
        return ["aws", "s3", "sync", "--no-follow-symlinks", url, str(dest)]
    if url.startswith("gs://"):
        return ["gsutil", "-m", "rsync", "-r", url, str(dest)]
    raise BackendError(
        f"VibeML cannot download from {url.split('://')[0]}:// buckets itself",
        {"url": url, "dest": str(dest)},
        f"Copy {url} to {dest} with your cloud's CLI, or use an s3:// or gs:// bucket (VIBEML_SKY_BUCKET).",
    )


def cluster_download_argv(cluster: str, remote_dir: str, dest: Path) -> list[str]:
    """rsync of a cluster's output dir to ``dest`` over the SSH entry SkyPilot writes for the cluster
    (``Host <cluster>`` in ``~/.ssh/config``: its head node). ``remote_dir`` is relative to the remote home."""
    return ["rsync", "-a", "--partial", f"{cluster}:{remote_dir}/", f"{dest}/"]
