"""Following a Vast.ai job: status from the instance and its log, the end of a job, spot preemption.

Mixed into :class:`~vibeml.backends.vast.VastBackend` (split out to keep modules small). See that
module's docstring for the whole lifecycle; here:

* :meth:`VastJobMonitor.status` maps the instance (``actual_status``, ``status_msg``) and the runner's and
  trainer's log records to a :class:`~vibeml.models.JobProgress`, with a conservative ``cost_so_far``;
* when the runner reports the trainer finished, :meth:`_conclude` downloads the adapter (or the last
  checkpoint after a stop), destroys the instance and freezes the job's final progress; a failed
  destroy leaves the job open so the next poll tries again (never a "done" job with a machine billing);
* a stopped bid instance is re-bid (:meth:`_on_stopped`) and destroyed when it does not run again
  within ``spot_wait``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from vibeml.backends.vast.options import VastOptions
from vibeml.backends.vast.progress import JobState, RunInfo, billed_cost
from vibeml.backends.vast.transport import ArtifactTransport
from vibeml.exceptions import BackendError, VibeMLError, retry_with_backoff
from vibeml.models import JobHandle, JobProgress, JobStatus, VastHandle, VastHandleData
from vibeml.processes import process_alive
from vibeml.remote.supervisor import COLLECTED_MARKER
from vibeml.vast import VastAI, VastAPIError, VastNotFoundError

__all__ = ["FAILED_MSG", "LOG_FILENAME", "VastJobMonitor", "quiet"]

logger = logging.getLogger("vibeml.backends.vast")

LOG_FILENAME = "train.log"
FAILED_MSG = re.compile(r"\b(error|failed|failure|unable|cannot|denied|no such)\b", re.IGNORECASE)


def _instance_id(handle: VastHandle) -> int:
    """The rented instance's id (every launched handle has one; the model checks it)."""
    iid = handle.data.instance_id
    if iid is None:
        raise BackendError(
            f"job {handle.job_id} has no Vast.ai instance yet",
            {"job_id": handle.job_id, "label": handle.data.label},
            "Check `vibeml status JOB`; `vibeml vast cleanup` destroys anything left under its label.",
        )
    return iid


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Best-effort steps: a VibeML error is logged, never raised."""
    try:
        yield
    except VibeMLError as exc:
        logger.info("best-effort step failed: %s", exc.message)


class VastJobMonitor:
    """Status, teardown and spot handling for :class:`~vibeml.backends.vast.VastBackend`."""

    options: VastOptions
    transport: ArtifactTransport
    _clock: Callable[[], float]
    _sleep: Callable[[float], Any]
    _last_log: dict[str, str]

    def client(self) -> VastAI:  # pragma: no cover - provided by the backend
        raise NotImplementedError

    if TYPE_CHECKING:  # provided by Backend (a stub here would shadow it: this class comes first in the MRO)

        def own(self, handle: JobHandle) -> VastHandle: ...

    @staticmethod
    def _remote(data: VastHandleData, rel: str) -> str:
        return str(PurePosixPath(data.remote_dir) / rel)

    def _destroy(self, vast: VastAI, iid: int) -> bool:
        """Destroy an instance, retrying; True once it is gone (already gone counts).

        ``destroy_attempts`` rounds (each with the client's own HTTP retries), 0.2 s × 2ⁿ⁻¹ (at most 5 s)
        apart; any API error is worth another round, as a machine left running bills.
        """

        def once() -> bool:
            with contextlib.suppress(VastNotFoundError):
                vast.destroy_instance(iid)
            return True

        def note(exc: BaseException, attempt: int, delay: float) -> None:
            logger.warning("destroying instance %s failed (%s); attempt %d, again in %.1f s", iid, exc, attempt, delay)

        try:
            return retry_with_backoff(
                max_attempts=self.options.destroy_attempts,
                base_delay=0.2,
                backoff=2.0,
                max_delay=5.0,
                jitter=0.0,
                retry_on=(VastAPIError,),
                sleep=self._sleep,
                on_retry=note,
            )(once)()
        except VastAPIError as exc:
            logger.warning(
                "destroying instance %s failed (%s) after %d attempts", iid, exc, self.options.destroy_attempts
            )
            return False

    def _destroy_label(self, vast: VastAI, label: str, known: int | None = None) -> bool:
        return self._destroy_label_ids(vast, label, known)[0]

    def _destroy_label_ids(self, vast: VastAI, label: str, known: int | None = None) -> tuple[bool, list[int]]:
        """Destroy ``known`` and every instance under ``label``: (all gone?, the ids met)."""
        ids = {known} if known else set()
        listed = True
        try:
            ids |= {int(i["id"]) for i in vast.show_instances() if i.get("label") == label}
        except VastAPIError:
            listed = False
        return listed and all([self._destroy(vast, i) for i in sorted(ids)]), sorted(ids)

    def _settle_unlaunched(self, handle: VastHandle, met: list[int]) -> str:
        """Why a launch whose launcher is gone did not complete (``met``: what its label held, destroyed)."""
        iid = handle.data.instance_id
        if iid:
            return f"the launcher stopped after renting instance {iid}; the instance was destroyed"
        return "the launcher stopped before renting anything"

    # ------------------------------------------------------------------------------ status

    def _read_log(self, vast: VastAI, handle: VastHandle, state: JobState) -> str | None:
        o = self.options
        try:
            text = vast.logs(_instance_id(handle), tail=o.logs_tail, timeout=o.logs_timeout, poll_interval=o.logs_poll)
        except VibeMLError as exc:
            logger.info("could not read the log of job %s: %s", handle.job_id, exc.message)
            return None
        state.merge_log(text)
        self._last_log[handle.job_id] = text
        return text

    def _done(self, handle: VastHandle, state: JobState, progress: JobProgress) -> JobProgress:
        """Freeze the job's final progress (with its cost) and keep its last log."""
        end = float(state.data.get("destroyed_at") or self._clock())
        state.data["destroyed_at"] = end
        progress = progress.model_copy(update={"cost_so_far": billed_cost(handle.data, state, end)})
        state.set_final(progress)
        state.save()
        text = self._last_log.get(handle.job_id)
        if text:
            (Path(handle.job_dir) / LOG_FILENAME).write_text(text, encoding="utf-8")
        return progress

    def _interim(
        self,
        handle: VastHandle,
        state: JobState,
        progress: JobProgress,
        note: str | None = None,
        status: JobStatus | None = None,
    ) -> JobProgress:
        now = self._clock()
        state.data["last_poll"] = now
        state.save()
        upd: dict[str, Any] = {"cost_so_far": billed_cost(handle.data, state, now)}
        if note is not None:
            upd["error"] = note
        if status is not None:
            upd["status"] = status
        return progress.model_copy(update=upd)

    def status(self, handle: VastHandle) -> JobProgress:
        handle = self.own(handle)
        state = JobState(Path(handle.job_dir))
        final = state.final
        if final is not None:
            return final
        if not handle.data.launched:
            return self._status_unlaunched(handle, state)
        vast = self.client()
        iid = _instance_id(handle)
        now = self._clock()
        try:
            inst: dict[str, Any] | None = vast.show_instance(iid)
        except VastNotFoundError:
            inst = None
        except VastAPIError as exc:
            info = RunInfo.from_records(state.records())
            return self._interim(handle, state, info.interim(), f"Vast.ai did not answer ({exc.message}); retrying")
        if inst is None:
            return self._gone(handle, state)
        self._read_log(vast, handle, state)
        info = RunInfo.from_records(state.records())
        if info.bill_accrued > float(state.data.get("runner_bill") or 0.0):  # what the instance read of its bill
            state.data["runner_bill"] = info.bill_accrued
        status, msg = inst.get("actual_status"), str(inst.get("status_msg") or "")
        if status == "stopped":
            return self._on_stopped(vast, handle, state, inst, info, now)
        if status == "running" and state.data.get("stopped_since") is not None:
            state.data.pop("stopped_since")
            rate = state.data.get("gpu_rate", handle.data.gpu_rate or 0.0)
            state.data.setdefault("segments", []).append([state.data.get("last_poll", now), rate])
        if info.finished or info.gave_up:
            return self._conclude(vast, handle, state, inst, info)
        if status in ("exited", "offline") or (status != "running" and FAILED_MSG.search(msg)):
            return self._fail(vast, handle, state, info, f"the instance is {status}: {msg or 'no message'}")
        if status == "running":
            state.data.pop("loading_since", None)
            state.data["last_seen"] = now
            seen = float(state.data.get("running_seen") or now)
            if not info.started and now - seen > self.options.boot_timeout:
                return self._fail(
                    vast,
                    handle,
                    state,
                    info,
                    f"nothing ran on the instance within "
                    f"{self.options.boot_timeout:g} s of it starting (see `vibeml logs`)",
                )
            return self._interim(handle, state, info.interim())
        since = float(state.data.setdefault("loading_since", now))
        if now - since > self.options.start_timeout:
            return self._fail(vast, handle, state, info, f"the instance has been {status} for {now - since:.0f} s")
        return self._interim(handle, state, info.interim(), status=JobStatus.PROVISIONING)

    def _status_unlaunched(self, handle: VastHandle, state: JobState) -> JobProgress:
        d = handle.data
        pid = d.launcher_pid
        pending = JobProgress(status=JobStatus.PENDING)
        if pid and pid != os.getpid() and process_alive(pid, d.launcher_start):
            return self._interim(handle, state, pending)  # still launching, elsewhere
        if pid == os.getpid() and not state.data.get("launch_failed"):
            return self._interim(handle, state, pending)
        vast = self.client()
        iid = d.instance_id
        gone, met = self._destroy_label_ids(vast, d.label, iid)
        if not gone:
            return self._interim(
                handle, state, pending, "the launcher stopped mid-launch; destroying its instance failed, retrying"
            )
        what = self._settle_unlaunched(handle, [i for i in met if i != iid])
        return self._done(
            handle,
            state,
            JobProgress(status=JobStatus.FAILED, error=f"the launch did not complete ({what})"),
        )

    def _fail(
        self,
        vast: VastAI,
        handle: VastHandle,
        state: JobState,
        info: RunInfo,
        why: str,
        status: JobStatus = JobStatus.FAILED,
    ) -> JobProgress:
        """Destroy and end the job; if the destroy fails the job stays open and the next poll retries."""
        if not self._destroy(vast, _instance_id(handle)):
            return self._interim(handle, state, info.interim(), f"{why}; destroying the instance failed, retrying")
        progress = info.progress(alive=False).model_copy(update={"status": status, "error": why})
        return self._done(handle, state, progress)

    def _conclude(
        self, vast: VastAI, handle: VastHandle, state: JobState, inst: dict[str, Any], info: RunInfo
    ) -> JobProgress:
        """The runner says the trainer is finished: bring back what it made, destroy, end the job."""
        progress = info.progress(alive=False)
        outcome = info.outcome if info.finished else None
        if outcome == "done":
            try:
                local = Path(state.data.get("artifacts") or self._collect(handle, state, inst, info))
            except VibeMLError as exc:
                failures = state.data["fetch_failures"] = int(state.data.get("fetch_failures", 0)) + 1
                if failures < 5 and inst.get("actual_status") not in ("exited", "offline"):
                    return self._interim(
                        handle,
                        state,
                        info.interim(),
                        f"training finished; fetching the adapter failed ({exc.message}); retrying",
                    )
                return self._fail(
                    vast,
                    handle,
                    state,
                    info,
                    f"training finished but the adapter could not be brought back: {exc.message}",
                )
            with quiet():
                self.transport.put_text(inst, self._remote(handle.data, COLLECTED_MARKER), "ok\n")
            if not self._destroy(vast, _instance_id(handle)):
                return self._interim(
                    handle, state, info.interim(), "adapter fetched; destroying the instance failed, retrying"
                )
            return self._done(
                handle,
                state,
                progress.model_copy(update={"status": JobStatus.COMPLETED, "output_dir": str(local), "error": None}),
            )
        if outcome == "stopped":
            with quiet():
                self._collect(handle, state, inst, info)
            return self._fail(vast, handle, state, info, progress.error or "stopped", JobStatus.STOPPED)
        if outcome == "error":
            return self._fail(vast, handle, state, info, progress.error or "the trainer failed")
        gave = info.gave_up
        if gave is not None:
            return self._fail(vast, handle, state, info, f"the instance gave up: {gave.get('reason')}")
        rc = (info.finished or {}).get("rc")
        return self._fail(
            vast,
            handle,
            state,
            info,
            f"the trainer exited with code {rc} without a final event "
            "(killed, out of memory, or crashed); see `vibeml logs`",
        )

    def _collect(self, handle: VastHandle, state: JobState, inst: dict[str, Any], info: RunInfo) -> Path:
        """Download the adapter (after ``done``) or the last checkpoint (after ``stopped``)."""
        d = handle.data
        progress = info.progress(alive=False)
        if info.outcome == "done":
            remote, local = self._remote(d, "output"), Path(d.output_dir)
        elif progress.last_checkpoint:
            name = PurePosixPath(progress.last_checkpoint).name
            remote, local = self._remote(d, f"checkpoints/{name}"), Path(d.checkpoint_dir) / name
        else:
            raise BackendError("nothing to bring back")
        tmp = Path(handle.job_dir) / ".vast-download"
        shutil.rmtree(tmp, ignore_errors=True)
        self.transport.download(inst, remote, tmp)
        if not tmp.exists():
            raise BackendError(f"downloading {remote} produced nothing")
        local.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tmp, local, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        state.data["artifacts" if info.outcome == "done" else "checkpoint"] = str(local)
        state.save()
        return local

    def _gone(self, handle: VastHandle, state: JobState) -> JobProgress:
        """The instance no longer exists and VibeML did not destroy it."""
        info = RunInfo.from_records(state.records())
        d = handle.data
        budget_s = d.budget_seconds or 0.0  # the runner counts its boot too: it ends a bit early
        budget_end = (d.running_from or d.created_at or 0.0) + budget_s
        ended = [r.get("time") for r in info.runner if r.get("phase") == "destroying"]
        if ended and isinstance(ended[-1], (int, float)):
            end = max(float(state.data.get("last_seen") or 0.0), float(ended[-1]))
        else:  # unseen: it cannot have run past its own budget
            end = min(self._clock(), max(budget_end, float(state.data.get("last_seen") or 0.0)))
        state.data["destroyed_at"] = end
        progress = info.progress(alive=False)
        outcome = info.outcome if info.finished else None
        if outcome == "stopped":
            why = (
                f"{progress.error or 'stopped'}; the instance then destroyed itself at the end of its budget "
                "(the checkpoint went with it)"
            )
            return self._done(handle, state, progress.model_copy(update={"status": JobStatus.STOPPED, "error": why}))
        if outcome == "done" and state.data.get("artifacts"):  # it destroyed itself once we had the adapter
            return self._done(
                handle,
                state,
                progress.model_copy(
                    update={"status": JobStatus.COMPLETED, "output_dir": state.data["artifacts"], "error": None}
                ),
            )
        if outcome == "done":
            why = (
                f"training finished, but the instance was destroyed before VibeML brought the adapter back "
                f"(it waits {self.options.linger:g} s for a `vibeml status`)"
            )
        elif outcome == "error":
            why = progress.error or "the trainer failed"
        elif not info.finished and budget_s and self._clock() >= budget_end - max(5.0, 0.05 * budget_s):
            why = (
                "the run-time budget ran out: the instance stopped the trainer and destroyed itself "
                "(no checkpoint could be brought back)"
            )
            return self._done(handle, state, progress.model_copy(update={"status": JobStatus.STOPPED, "error": why}))
        else:
            why = (
                "the instance no longer exists (destroyed outside this job, or by itself at the end of its "
                "budget or before its bill reached the cap)"
            )
        return self._done(handle, state, progress.model_copy(update={"status": JobStatus.FAILED, "error": why}))

    def _on_stopped(
        self, vast: VastAI, handle: VastHandle, state: JobState, inst: dict[str, Any], info: RunInfo, now: float
    ) -> JobProgress:
        """Preempted (outbid) or stopped: re-bid if affordable; destroy after ``spot_wait``."""
        o, d = self.options, handle.data
        iid = _instance_id(handle)
        since = float(state.data.setdefault("stopped_since", now))
        segments = state.data.setdefault("segments", [])
        if not segments or segments[-1][1] != 0.0:
            segments.append([now, 0.0])
        step = info.progress().step
        if inst.get("is_bid") and d.bid:
            raw_min = inst.get("min_bid")
            min_bid = float(raw_min) if isinstance(raw_min, (int, float)) else float("inf")
            ceiling = round(d.bid * o.max_rebid_factor, 4)
            rebids = int(state.data.get("rebids", 0))
            affordable = 0 < min_bid <= ceiling
            if affordable and state.data.get("rebid_for") == min_bid:
                note = f"preempted at step {step}; re-bid ${state.data.get('gpu_rate')}/h, waiting for it to run"
            elif affordable and rebids < o.max_rebids:
                new = min(ceiling, round(min_bid * o.bid_margin, 4))
                try:
                    vast.change_bid(iid, new)
                    state.data.update(rebids=rebids + 1, gpu_rate=new, rebid_for=min_bid)
                    note = f"preempted at step {step}; re-bid ${new:.4f}/h, it resumes from its last checkpoint"
                except VastAPIError as exc:
                    note = f"preempted at step {step}; re-bidding failed ({exc.message})"
            elif affordable:
                note = f"preempted at step {step} again; no re-bids left ({o.max_rebids})"
            else:
                note = f"preempted at step {step} (min bid ${raw_min}/h > our ceiling ${ceiling:.4f}/h)"
        else:
            if not state.data.get("start_asked"):
                with quiet():
                    vast.start_instance(iid)
                state.data["start_asked"] = True
            note = f"the instance was stopped at step {step}; asked it to start again"
        if now - since >= o.spot_wait:
            return self._fail(
                vast,
                handle,
                state,
                info,
                f"{note}; it did not run again within {o.spot_wait:g} s, "
                "so it was destroyed (storage is billed while stopped)",
                JobStatus.STOPPED,
            )
        return self._interim(handle, state, info.interim(), note, JobStatus.PROVISIONING)
