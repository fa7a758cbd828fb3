"""The SkyPilot backend: any cloud SkyPilot supports, managed spot jobs with recovery, multi-GPU/multi-node.

``pip install 'vibeml[sky]'``; SkyPilot is imported only when this backend is used. Every SkyPilot call
goes through its client/server request API (``sky.launch``/``sky.jobs.launch``/``sky.status``/… return a
request id, resolved with ``sky.get`` or ``sky.stream_and_get``).

* On-demand → a cluster (``sky.launch(down=True)``, autodown after a short idle window so VibeML can
  copy the output back first). Spot → a managed job (``sky.jobs.launch``): SkyPilot recovers it after a
  preemption on a new machine, and the trainer resumes from its checkpoints on a bucket.
* Status: the launch request while it runs, then the job queue, mapped to VibeML's statuses and
  reconciled with the trainer's events (echoed into the job log, mirrored under the job dir so they
  outlive the cluster). On the terminal status the output is fetched and the cluster torn down.
* Cost: SkyPilot's ``cost_report`` for clusters; job duration × the planned rate for managed jobs.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import queue
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from vibeml.backends.base import Backend, Capabilities, Capability, LaunchChoice, write_handle_file
from vibeml.backends.skypilot.status import (
    CLUSTER_JOB_STATUS,
    GONE,
    MANAGED_JOB_STATUS,
    REQUEST_STATUS,
    LineSink,
    bucket_download_argv,
    cluster_download_argv,
    field,
    is_sky_error,
    reconcile,
    run_command,
    status_name,
)
from vibeml.backends.skypilot.task import SkyOptions, SkyTaskSpec, build_task_spec, import_sky
from vibeml.catalog.prices import CLOUDS, PriceQuote, read_sky_catalogs
from vibeml.exceptions import BackendError, CredentialError, ResourceError, VibeMLError
from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobProgress, JobStatus, SkyPilotHandle, SkyPilotHandleData, TrainingRequest
from vibeml.safe_paths import atomic_write_bytes
from vibeml.settings import Settings
from vibeml.trainer.events import TrainerEvent, dump_event, parse_event_lines
from vibeml.workflows.registry import TrainingProgram

__all__ = ["SkyPilotBackend"]

S = JobStatus

STATE_FILENAME = "sky_state.json"
TASK_FILENAME = "sky_task.yaml"
LOG_DIRNAME = "sky_logs"


class SkyPilotBackend(Backend[SkyPilotHandle]):
    """Runs the trainer through SkyPilot on any cloud it has credentials for (``sky check``).

    Args:
        settings: VibeML settings (``remote_install`` says how VibeML gets onto the machine; the ``skypilot``
            section has the bucket, the managed-jobs switch and SkyPilot's runtime folder).
        options: SkyPilot options; by default :meth:`SkyOptions.from_settings` of ``settings``.
        runner: Runs a local command (rsync, bucket sync); a seam for tests.
        poll_seconds: How often ``logs(follow=True)`` checks a job that has not started yet.
    """

    name: ClassVar[str] = "skypilot"
    description: ClassVar[str] = "Any cloud via SkyPilot: managed spot jobs with recovery, multi-GPU and multi-node."
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=Capability(supported=True, reason="managed jobs recover from preemption and resume from checkpoints"),
        multi_gpu=Capability(supported=True, reason="torchrun on one node"),
        multi_node=Capability(supported=True, reason="torchrun across SkyPilot nodes"),
        artifacts=Capability(supported=True, reason="rsync from the cluster or sync from the bucket"),
        gpu_selection=Capability(supported=True),
        budget_cap=Capability(supported=True, reason="max_hourly_cost, a run timeout and autodown"),
    )
    clouds: ClassVar[tuple[str, ...] | None] = tuple(sorted(CLOUDS))
    #: Up to 4 nodes of 8 GPUs (torchrun across SkyPilot's nodes) when one node cannot hold the job.
    max_nodes: ClassVar[int] = 4
    handle_type: ClassVar[type[SkyPilotHandle]] = SkyPilotHandle

    def __init__(
        self,
        settings: Settings,
        *,
        options: SkyOptions | None = None,
        runner: Callable[[list[str]], None] | None = None,
        poll_seconds: float = 10.0,
    ) -> None:
        self.settings = settings
        self.options = options or SkyOptions.from_settings(settings)
        self._run_cmd = runner or run_command
        self.poll_seconds = poll_seconds

    # ------------------------------------------------------------------------------ plumbing

    @staticmethod
    def _sky() -> ModuleType:
        return import_sky()

    def _translate(self, exc: BaseException, action: str) -> VibeMLError:
        """SkyPilot's exceptions → VibeML's (the one place they are translated)."""
        if isinstance(exc, VibeMLError):
            return exc
        message = f"SkyPilot {action} failed: {type(exc).__name__}: {exc}".strip()[:2000]
        if is_sky_error(exc, ("NoCloudAccessError", "InvalidCloudCredentials", "CloudUserIdentityError")):
            return CredentialError(message, {"action": action}, "Run `sky check` to see which clouds are set up.")
        if is_sky_error(exc, ("ResourcesUnavailableError", "ProvisionPrechecksError")):
            return ResourceError(
                message, {"action": action}, "Allow more clouds/regions or another GPU, or retry later."
            )
        if is_sky_error(exc, ("ApiServerConnectionError", "ApiServerAuthenticationError", "APIVersionMismatchError")):
            return BackendError(message, {"action": action}, "Check the SkyPilot API server: `sky api info`.")
        return BackendError(message, {"action": action})

    @staticmethod
    def _state_path(handle: SkyPilotHandle) -> Path:
        return Path(handle.job_dir) / STATE_FILENAME

    def _state(self, handle: SkyPilotHandle) -> dict[str, Any]:
        try:
            data = json.loads(self._state_path(handle).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        return data if isinstance(data, dict) else {}

    def _save_state(self, handle: SkyPilotHandle, state: dict[str, Any]) -> None:
        atomic_write_bytes(self._state_path(handle), json.dumps(state, indent=2, default=str).encode("utf-8"))

    def live_quotes(self, request: TrainingRequest) -> list[PriceQuote] | None:
        """Prices from SkyPilot's cached catalogues (``<SKY_RUNTIME_DIR or ~>/.sky/catalogs/v8``), when present."""
        return read_sky_catalogs(runtime_dir=self.settings.skypilot.runtime_dir) or None

    # ------------------------------------------------------------------------------ launch

    def task_spec(self, program: TrainingProgram, job_id: str, choice: LaunchChoice | None = None) -> SkyTaskSpec:
        """The task this backend would launch (no SkyPilot call)."""
        return build_task_spec(program, job_id, choice, self.options)

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> SkyPilotHandle:
        spec = self.task_spec(program, job_id, choice)
        sky = self._sky()
        job_dir.mkdir(parents=True, exist_ok=True)
        task = spec.to_task(sky, secrets=program.secret_env())
        (job_dir / TASK_FILENAME).write_text(spec.to_yaml(sky), encoding="utf-8")
        idle = spec.resources[0].autostop_idle_minutes
        try:
            if spec.managed:
                request_id = sky.jobs.launch(task, name=spec.name)
            else:
                request_id = sky.launch(task, cluster_name=spec.name, idle_minutes_to_autostop=idle, down=True)
        except Exception as exc:
            raise self._translate(exc, "launch") from exc
        first = spec.resources[0]
        handle = SkyPilotHandle(
            job_id=job_id,
            backend_job_id=spec.name,
            job_dir=str(job_dir),
            data=SkyPilotHandleData(
                mode="managed" if spec.managed else "cluster",
                cluster_name=spec.name,
                request_id=str(request_id),
                num_nodes=spec.num_nodes,
                hourly_rate=first.hourly_rate * spec.num_nodes,
                hourly_cap=spec.hourly_cap,
                store_url=spec.store.url if spec.store else None,
                store_name=spec.store.name if spec.store else None,
                remote_output_dir=spec.remote_output_dir,
                remote_checkpoint_dir=spec.remote_checkpoint_dir,
                local_output_dir=program.config.output_dir,
                events_path=str(job_dir / "events.jsonl"),
                runtime_limit_seconds=spec.runtime_limit_seconds,
                launched_at=time.time(),
            ),
        )
        write_handle_file(handle)
        self._save_state(handle, {"launch": "pending"})
        return handle

    # ------------------------------------------------------------------------------ status

    def _launch_state(self, sky: ModuleType, handle: SkyPilotHandle, state: dict[str, Any]) -> tuple[str, str | None]:
        """'pending' | 'done' | 'failed' | 'cancelled' for the launch request (cached once finished)."""
        if state.get("launch", "pending") != "pending":
            return state["launch"], state.get("launch_error")
        rid = handle.data.request_id
        try:
            payloads = sky.api_status(request_ids=[rid]) if rid else []
        except Exception:
            return "pending", None
        mine = [p for p in payloads if str(field(p, "request_id") or "").startswith(rid)]
        raw = status_name(field(mine[0], "status")) if mine else ""
        mapped = REQUEST_STATUS.get(raw, None) if raw else None
        if raw in ("", "SUCCEEDED"):
            state["launch"] = "done"
        elif mapped is S.FAILED:
            try:
                sky.get(rid)
                error = next((str(field(p, "error")) for p in payloads if field(p, "error")), "the launch failed")
            except Exception as exc:
                error = self._translate(exc, "launch").message
            state.update(launch="failed", launch_error=error)
        elif mapped is S.STOPPED:
            state["launch"] = "cancelled"
        return state.get("launch", "pending"), state.get("launch_error")

    def _managed_record(self, sky: ModuleType, handle: SkyPilotHandle, state: dict[str, Any]) -> Any:
        job_id = state.get("sky_job_id")
        try:
            result = sky.get(sky.jobs.queue(refresh=False, skip_finished=False, job_ids=[job_id] if job_id else None))
        except Exception as exc:
            if is_sky_error(exc, GONE):
                return None
            raise self._translate(exc, "job queue") from exc
        records = result[0] if isinstance(result, tuple) else result
        mine = [r for r in records or [] if field(r, "job_name") == handle.data.cluster_name]
        if not mine:
            return None
        record = max(mine, key=lambda r: field(r, "job_id") or 0)
        state["sky_job_id"] = field(record, "job_id")
        return record

    def _cluster_job(self, sky: ModuleType, handle: SkyPilotHandle) -> JobStatus | None:
        """The cluster's latest job status; None when the cluster is gone (or not UP)."""
        name = handle.data.cluster_name
        try:
            clusters = sky.get(sky.status(cluster_names=[name]))
        except Exception as exc:
            raise self._translate(exc, "status") from exc
        record = next((c for c in clusters or [] if field(c, "name") == name), None)
        if record is None:
            return None
        if status_name(field(record, "status")) == "INIT":
            return S.PROVISIONING
        try:
            jobs = sky.get(sky.job_status(name, job_ids=None)) or {}
        except Exception as exc:
            if is_sky_error(exc, GONE):
                return None
            raise self._translate(exc, "job status") from exc
        known = {k: v for k, v in jobs.items() if v is not None}
        if not known:
            return S.PROVISIONING
        latest = known[max(known, key=lambda k: k or 0)]
        return CLUSTER_JOB_STATUS.get(status_name(latest), S.RUNNING)

    def status(self, handle: SkyPilotHandle) -> JobProgress:
        handle = self.own(handle)
        state = self._state(handle)
        if state.get("final"):
            return JobProgress.model_validate(state["progress"])
        sky = self._sky()
        launch, launch_error = self._launch_state(sky, handle, state)
        failure: str | None = None
        duration: float | None = None
        if handle.data.mode == "managed":
            record = self._managed_record(sky, handle, state)
            sky_status = MANAGED_JOB_STATUS.get(status_name(field(record, "status")), S.RUNNING) if record else None
            if record is not None:
                failure = field(record, "failure_reason")
                duration = field(record, "job_duration")
                recoveries = int(field(record, "recovery_count") or 0)
                if recoveries > state.get("recovery_count", 0):
                    state["recovery_count"] = recoveries
                if status_name(field(record, "status")) == "RECOVERING":
                    state["recovering"] = True
        else:
            sky_status = self._cluster_job(sky, handle)
        cluster_up = handle.data.mode == "cluster" and sky_status is not None
        if sky_status is None:
            sky_status = {"pending": S.PROVISIONING, "failed": S.FAILED, "cancelled": S.STOPPED}.get(launch)
            failure = launch_error
        lines = self._refresh_logs(sky, handle, state, sky_status)
        events = list(parse_event_lines(lines))
        self._mirror_events(handle, events)
        if sky_status is None:  # launched, now gone: the mirrored events say how it ended
            ended = progress_from_events(events, alive=True)  # terminal only through an event
            if ended.status.is_terminal:
                sky_status = ended.status
            elif state.get("stop_requested"):
                sky_status, failure = S.STOPPED, "stopped by request"
            else:
                sky_status = S.FAILED
                failure = (
                    "SkyPilot no longer knows the managed job"
                    if handle.data.mode == "managed"
                    else "the cluster went away before the job finished (torn down or preempted)"
                )
        cancelled = "stopped by request" if state.get("stop_requested") else "cancelled"
        progress = reconcile(sky_status, events, failure, cancelled=cancelled)
        state["status"] = progress.status.value
        if progress.status.is_terminal:
            progress = self._finalize(handle, state, progress, cluster_up)  # output home, then teardown
        progress = progress.model_copy(
            update={
                "cost_so_far": self._cost(sky, handle, state, progress.status, duration),
                "output_dir": state.get("artifacts"),
            }
        )
        if progress.status.is_terminal:
            state.update(final=True, progress=progress.model_dump(mode="json"))
        self._save_state(handle, state)
        return progress

    def _cost(
        self, sky: ModuleType, handle: SkyPilotHandle, state: dict[str, Any], status: JobStatus, duration: float | None
    ) -> float:
        """SkyPilot's reported cost (clusters) or job time × the planned rate (managed jobs)."""
        previous = float(state.get("cost", 0.0))
        rate = handle.data.hourly_rate
        cost = previous
        if handle.data.mode == "managed":
            if duration:
                cost = duration / 3600.0 * rate
        elif status is not S.PROVISIONING or previous:
            days = max(1, math.ceil((time.time() - handle.data.launched_at) / 86400) + 1)
            try:
                report = sky.get(sky.cost_report(days=days)) or []
                mine = [r for r in report if field(r, "name") == handle.data.cluster_name]
                if mine:
                    cost = sum(float(field(r, "total_cost") or 0.0) for r in mine)
            except Exception:
                pass  # the last known figure stands
        cost = round(max(previous, cost), 4)
        state["cost"] = cost
        return cost

    # ------------------------------------------------------------------------------ logs

    def _log_dir(self, handle: SkyPilotHandle) -> Path:
        return Path(handle.job_dir) / LOG_DIRNAME

    def _mirror_lines(self, handle: SkyPilotHandle) -> list[str]:
        lines: list[str] = []
        for path in sorted(self._log_dir(handle).glob("attempt-*.log")):
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
        return lines

    def _mirror_events(self, handle: SkyPilotHandle, events: list[TrainerEvent]) -> None:
        path = Path(handle.data.events_path)
        text = "".join(dump_event(e) + "\n" for e in events)
        atomic_write_bytes(path, text.encode("utf-8"))

    @staticmethod
    def _lines(chunks: Iterable[str | None]) -> Iterator[str]:
        pending = ""
        for chunk in chunks:
            if chunk is None:
                break
            pending += chunk
            *done, pending = pending.split("\n")
            yield from (line.rstrip("\r") for line in done)
        if pending:
            yield pending

    def _remote_chunks(
        self, sky: ModuleType, handle: SkyPilotHandle, state: dict[str, Any], follow: bool, tail: int | None
    ) -> Iterable[str | None]:
        if handle.data.mode == "managed":
            job_id = state.get("sky_job_id")
            return (
                sky.jobs.tail_logs(
                    name=None if job_id else handle.data.cluster_name,
                    job_id=job_id,
                    follow=follow,
                    tail=tail or None,
                    preload_content=False,
                )
                or []
            )
        return sky.tail_logs(handle.data.cluster_name, None, follow, tail=tail or 0, preload_content=False)

    def _refresh_logs(
        self, sky: ModuleType, handle: SkyPilotHandle, state: dict[str, Any], sky_status: JobStatus | None
    ) -> list[str]:
        """Copy the current attempt's log into the mirror (when reachable); all attempts' lines."""
        if sky_status in (S.RUNNING, S.STOPPING) or (sky_status is not None and sky_status.is_terminal):
            try:
                lines = list(self._lines(self._remote_chunks(sky, handle, state, False, None)))
            except Exception:
                lines = []
            if lines:
                attempt = int(state.get("recovery_count", 0))
                log_dir = self._log_dir(handle)
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / f"attempt-{attempt:03d}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self._mirror_lines(handle)

    def logs(self, handle: SkyPilotHandle, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        handle = self.own(handle)
        sky = self._sky()
        if not follow:
            try:
                lines = list(self._lines(self._remote_chunks(sky, handle, self._state(handle), False, tail)))
            except Exception:
                lines = []
            lines = lines or self._mirror_lines(handle)
            yield from (lines if tail is None else lines[-tail:] if tail > 0 else [])
            return
        streamed = request_streamed = False
        attempt: int | None = None  # the attempt whose log has been followed to its end
        while True:
            progress = self.status(handle)
            state = self._state(handle)
            if progress.status.is_terminal:
                if not streamed:
                    lines = self._mirror_lines(handle)
                    yield from (lines if tail is None else lines[-tail:] if tail > 0 else [])
                return
            if state.get("launch") == "pending" and handle.data.request_id and not request_streamed:
                request_streamed = True
                yield from self._stream_request(sky, handle.data.request_id)
                continue
            current = int(state.get("recovery_count", 0))
            if progress.status in (S.RUNNING, S.STOPPING) and attempt != current:
                try:
                    for line in self._lines(self._remote_chunks(sky, handle, state, True, tail)):
                        streamed = True
                        yield line
                except Exception:
                    time.sleep(self.poll_seconds)
                    continue
                # A follow ends with its attempt: wait for the end, or for a recovered attempt's log.
                attempt, tail = current, 0
                continue
            time.sleep(self.poll_seconds)

    def _stream_request(self, sky: ModuleType, request_id: str) -> Iterator[str]:
        """Provisioning and setup output of the launch request, line by line (``sky.stream_and_get``)."""
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            try:
                sky.stream_and_get(request_id, output_stream=LineSink(lines.put))
            except Exception as exc:
                lines.put(f"[vibeml] launch: {type(exc).__name__}: {exc}")
            finally:
                lines.put(None)

        threading.Thread(target=pump, name="vibeml-sky-launch-log", daemon=True).start()
        while (line := lines.get()) is not None:
            yield line

    # ------------------------------------------------------------------------------ stop / teardown

    def stop(self, handle: SkyPilotHandle, grace_seconds: float = 30.0) -> None:
        handle = self.own(handle)
        sky = self._sky()
        state = self._state(handle)
        state["stop_requested"] = True
        rid = handle.data.request_id
        if rid and self._launch_state(sky, handle, state)[0] == "pending":
            with contextlib.suppress(Exception):
                sky.get(sky.api_cancel(rid, silent=True))
        name = handle.data.cluster_name
        try:
            if handle.data.mode == "managed":
                job_id = state.get("sky_job_id")
                target: dict[str, Any] = {"job_ids": [job_id]} if job_id else {"name": name}
                sky.get(sky.jobs.cancel(graceful=True, graceful_timeout=max(1, int(grace_seconds)), **target))
            else:
                sky.get(sky.cancel(name, all=True))
        except Exception as exc:
            if not is_sky_error(exc, GONE):
                raise self._translate(exc, "cancel") from exc
        if handle.data.mode != "managed" and not state.get("torn_down"):
            with contextlib.suppress(VibeMLError):  # best effort: the output so far, before teardown
                self._fetch(sky, handle, self._default_dest(handle), state)
            self._down(sky, handle, state)
        self._save_state(handle, state)

    def _down(self, sky: ModuleType, handle: SkyPilotHandle, state: dict[str, Any]) -> None:
        """``sky down`` the job's cluster; a cluster that is already gone is fine."""
        buf = io.StringIO()
        try:
            request = sky.down(handle.data.cluster_name, graceful=self._has_store(handle))
            sky.stream_and_get(request, output_stream=buf)
        except Exception as exc:
            if not is_sky_error(exc, GONE):
                raise self._translate(exc, "teardown") from exc
        finally:
            if buf.getvalue():
                with open(Path(handle.job_dir) / "sky_teardown.log", "a", encoding="utf-8") as fh:
                    fh.write(buf.getvalue())
        state["torn_down"] = True

    @staticmethod
    def _has_store(handle: SkyPilotHandle) -> bool:
        return bool(handle.data.store_url or handle.data.store_name)

    def _finalize(
        self, handle: SkyPilotHandle, state: dict[str, Any], progress: JobProgress, cluster_up: bool
    ) -> JobProgress:
        """On SkyPilot's terminal status: bring the output home, then tear the cluster down (clusters only).

        The cluster is downed only once the adapter is here (or on a bucket, or the job produced none).
        A failed copy from a live cluster keeps the job open (``stopping``, not cached): the next status
        retries, and the error says where the adapter is and how to copy it by hand. SkyPilot's autodown
        (the idle window, paid out of the budget) is the backstop when the client never returns.
        """
        sky = self._sky()
        dest = self._default_dest(handle)
        stopped = bool(state.get("stop_requested"))
        wanted = progress.status in (S.COMPLETED, S.STOPPED) and not state.get("artifacts")
        on_disk_only = handle.data.mode == "cluster" and not self._has_store(handle)
        if wanted and on_disk_only and not cluster_up and not state.get("torn_down"):
            if progress.status is S.COMPLETED and not stopped:
                return progress.model_copy(
                    update={
                        "status": S.FAILED,
                        "error": (
                            f"training finished, but cluster {handle.data.cluster_name} was torn down (autodown "
                            "after its idle window) before VibeML copied the adapter, which was only on its disk; "
                            "set VIBEML_SKY_BUCKET so outputs outlive the cluster"
                        ),
                    }
                )
            wanted = False
        if wanted:
            try:
                self._fetch(sky, handle, dest, state)
            except VibeMLError as exc:
                state["artifacts_error"] = exc.message
                hint = self._fetch_hint(sky, handle, dest)
                if on_disk_only and not stopped:
                    return progress.model_copy(
                        update={
                            "status": S.STOPPING,
                            "error": f"training finished; copying the adapter failed ({exc.message}); "
                            f"VibeML retries on the next status; {hint}",
                        }
                    )
                note = f"copying the adapter failed ({exc.message}); {hint}"
                progress = progress.model_copy(
                    update={"error": f"{progress.error}; {note}" if progress.error else note}
                )
        if handle.data.mode != "managed" and not state.get("torn_down"):
            with contextlib.suppress(VibeMLError):
                self._down(sky, handle, state)
        return progress

    # ------------------------------------------------------------------------------ artifacts

    def _store_output_url(self, sky: ModuleType, handle: SkyPilotHandle) -> str | None:
        job = handle.job_id
        if handle.data.store_url:
            return f"{handle.data.store_url}/{job}/output"
        store_name = handle.data.store_name
        if not store_name:
            return None
        try:
            records = sky.get(sky.storage_ls()) or []
        except Exception as exc:
            raise self._translate(exc, "storage ls") from exc
        for record in records:
            if field(record, "name") == store_name:
                for store in field(record, "store") or []:
                    with contextlib.suppress(Exception):
                        return f"{store.store_prefix()}{store_name}/{job}/output"
        raise BackendError(
            f"bucket {store_name} was not found",
            {"bucket": store_name},
            "Check `sky storage ls`; the job may not have started.",
        )

    def _ssh_config(self, name: str) -> None:
        """Write the cluster's ``~/.ssh/config`` entry, so that ``rsync NAME:…`` reaches its head node.

        SkyPilot 0.14.1's SDK has no call for this: its CLI writes the entry on ``sky status NAME``
        (``sky.client.cli.command._get_cluster_records_and_set_ssh_config``, asking the API server for the
        cluster's SSH credentials). The same function is called here; without it, ``sky status NAME`` is run.
        """
        try:
            from sky.client.cli import command

            refresh = getattr(command, "_get_cluster_records_and_set_ssh_config", None)
        except Exception:
            refresh = None
        if refresh is None:
            self._run_cmd(["sky", "status", name])
            return
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its request log must not reach `--json` output
                refresh(clusters=[name])
        except Exception as exc:
            raise BackendError(
                f"could not write the SSH entry for cluster {name}: {type(exc).__name__}: {exc}"[:1000],
                {"cluster": name},
                f"Run `sky status {name}`, then `vibeml status` again.",
            ) from exc

    def _fetch_hint(self, sky: ModuleType, handle: SkyPilotHandle, dest: Path) -> str:
        """Where the job's output is, and the commands that copy it by hand."""
        name = handle.data.cluster_name
        if self._has_store(handle):
            try:
                url = self._store_output_url(sky, handle)
            except VibeMLError:
                url = None
            if url is None:
                where = f"{handle.data.store_name} under {handle.job_id}/output"
                return f"the adapter is in SkyPilot bucket {where} (`sky storage ls`)"
            try:
                command = shlex.join(bucket_download_argv(url, dest))
            except BackendError:
                command = "your cloud's CLI"
            return f"the adapter is at {url}; copy it with: {command}"
        rsync = shlex.join(cluster_download_argv(name, handle.data.remote_output_dir, dest))
        return (
            f"the adapter is on cluster {name} in ~/{handle.data.remote_output_dir} until it autodowns; "
            f"copy it with: sky status {name} && {rsync} && sky down {name}"
        )

    @staticmethod
    def _default_dest(handle: SkyPilotHandle) -> Path:
        return Path(handle.data.local_output_dir)

    def _fetch(self, sky: ModuleType, handle: SkyPilotHandle, target: Path, state: dict[str, Any]) -> Path:
        """Copy the job's output dir to ``target``: from the bucket, else rsync from the cluster."""
        url = self._store_output_url(sky, handle)
        target.mkdir(parents=True, exist_ok=True)
        if url is not None:
            self._run_cmd(bucket_download_argv(url, target))
        elif state.get("torn_down"):
            raise BackendError(
                "the cluster holding the output has been torn down",
                {"job_id": handle.job_id, "cluster": handle.data.cluster_name},
                "Set VIBEML_SKY_BUCKET (e.g. s3://my-bucket/vibeml) so outputs outlive the cluster.",
            )
        else:
            name = handle.data.cluster_name
            self._ssh_config(name)
            self._run_cmd(cluster_download_argv(name, handle.data.remote_output_dir, target))
        if not any(p.is_file() for p in target.rglob("*")):
            raise BackendError(
                f"the download of the job's output into {target} brought back no files",
                {"job_id": handle.job_id, "target": str(target)},
                "See `vibeml logs JOB`: the trainer may have written nothing.",
            )
        if target == self._default_dest(handle):
            state["artifacts"] = str(target)
            state.pop("artifacts_error", None)
        return target

    def fetch_artifacts(self, handle: SkyPilotHandle, dest: Path | None = None) -> Path:
        handle = self.own(handle)
        sky = self._sky()
        state = self._state(handle)
        target = Path(dest) if dest is not None else self._default_dest(handle)
        try:
            self._fetch(sky, handle, target, state)
            ended = state.get("status") in {s.value for s in JobStatus.TERMINAL}
            if ended and handle.data.mode != "managed" and not state.get("torn_down"):
                self._down(sky, handle, state)  # it was kept up only because the copy had failed
        finally:
            self._save_state(handle, state)
        return target
