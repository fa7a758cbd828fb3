"""What the Vast backend knows about a job between polls: the local state file and the log records.

A rented instance is only visible through the API and its log, and every VibeML command may be a new
process, so the backend keeps, beside the job (``<job_dir>/``):

* ``vast_records.log``: every ``@@vibeml-event`` / ``@@vibeml-runner`` line seen in the instance's log,
  in order, deduplicated (a log read returns only a tail; this keeps the early steps and survives the
  instance being destroyed);
* ``vast_state.json``: billing segments, when a stop or a slow start was first seen, re-bids, whether
  the artifacts came back, and the final progress once the job has ended (then frozen).

:class:`RunInfo` folds the records into progress for the *current* run: a preempted instance restarts
its runner, and only the lines after the runner's last ``start`` describe what is going on now.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobProgress, JobStatus, VastHandleData
from vibeml.remote.supervisor import RUNNER_PREFIX
from vibeml.safe_paths import atomic_write_bytes
from vibeml.trainer.events import ECHO_PREFIX, TERMINAL_EVENTS, StepEvent, TrainerEvent, parse_event

__all__ = ["RECORDS_FILE", "STATE_FILE", "JobState", "RunInfo", "billed_cost"]

RECORDS_FILE = "vast_records.log"
STATE_FILE = "vast_state.json"


class JobState:
    """The JSON state file of one job (atomic writes; concurrent writers: last one wins, harmlessly)."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = Path(job_dir)
        self.path = self.job_dir / STATE_FILE
        self.data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.data = loaded

    def save(self) -> None:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(self.data, indent=1, default=str).encode("utf-8"))

    @property
    def final(self) -> JobProgress | None:
        raw = self.data.get("final")
        return JobProgress.model_validate(raw) if isinstance(raw, dict) else None

    def set_final(self, progress: JobProgress) -> None:
        self.data["final"] = progress.model_dump(mode="json")

    # ---------------------------------------------------------------- records (log lines we keep)

    @property
    def records_path(self) -> Path:
        return self.job_dir / RECORDS_FILE

    def records(self) -> list[str]:
        try:
            text = self.records_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return list(dict.fromkeys(line for line in text.splitlines() if line))

    def merge_log(self, log_text: str) -> None:
        """Append the log's record lines that are new (each carries a timestamp, so equal = same)."""
        seen = set(self.records())
        new = []
        for raw in log_text.splitlines():
            line = raw.strip()
            for prefix in (ECHO_PREFIX, RUNNER_PREFIX):
                idx = line.find(prefix)
                if idx >= 0:
                    line = line[idx:]
                    break
            else:
                continue
            if line not in seen:
                seen.add(line)
                new.append(line)
        if new:
            self.job_dir.mkdir(parents=True, exist_ok=True)
            with open(self.records_path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(new) + "\n")


def billed_cost(data: VastHandleData, state: JobState, end: float) -> float:
    """Conservative dollars so far: storage since creation + GPU over the billing segments.

    ``data`` is the handle's data (``created_at``, ``storage_rate``); ``state.data["segments"]`` is a list
    of ``[start, gpu $/h]`` (0 while stopped). Segments start at the last poll that saw the instance not
    running, so the estimate errs high, never low. Never below the instance's own last reading of its bill
    (``state.data["runner_bill"]``, from the runner's ``bill`` lines): Vast may bill faster than it quoted.
    """
    created = data.created_at or end
    cost = (data.storage_rate or 0.0) * max(0.0, end - created) / 3600.0
    segments = state.data.get("segments") or [[created, data.gpu_rate or 0.0]]
    for i, (start, rate) in enumerate(segments):
        stop = segments[i + 1][0] if i + 1 < len(segments) else end
        cost += float(rate) * max(0.0, min(stop, end) - float(start)) / 3600.0
    cost = max(cost, float(state.data.get("runner_bill") or 0.0))
    return math.ceil(cost * 1e6) / 1e6  # whole micro-dollars, rounded up: never below the bill


@dataclass
class RunInfo:
    """The records folded: the current run's trainer events and the runner's report on it."""

    events: list[TrainerEvent] = field(default_factory=list)
    all_events: list[TrainerEvent] = field(default_factory=list)
    runner: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_records(cls, lines: list[str]) -> RunInfo:
        info = cls()
        for line in lines:
            if line.startswith(ECHO_PREFIX):
                event = parse_event(line[len(ECHO_PREFIX) :])
                if event is not None:
                    info.events.append(event)
                    info.all_events.append(event)
            elif line.startswith(RUNNER_PREFIX):
                try:
                    obj = json.loads(line[len(RUNNER_PREFIX) :])
                except json.JSONDecodeError:
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("phase"), str):
                    continue
                if obj["phase"] == "start":
                    info.events, info.runner = [], []  # a new run: what came before is history
                info.runner.append(obj)
        return info

    def _phase(self, name: str) -> dict[str, Any] | None:
        return next((r for r in reversed(self.runner) if r.get("phase") == name), None)

    @property
    def started(self) -> bool:
        """The runner reported in this run (or, for logs without runner lines, the trainer did)."""
        return bool(self.runner) or bool(self.events)

    @property
    def finished(self) -> dict[str, Any] | None:
        """The runner's ``finished`` record: the trainer is done for good in this run."""
        return self._phase("finished")

    @property
    def gave_up(self) -> dict[str, Any] | None:
        return self._phase("gave-up")

    @property
    def bill_accrued(self) -> float:
        """The highest accrued cost the runner read from its instance's bill in this run (0: none yet)."""
        seen = [r.get("accrued") for r in self.runner if r.get("phase") == "bill" and r.get("ok")]
        return max((float(a) for a in seen if isinstance(a, (int, float)) and math.isfinite(a)), default=0.0)

    @property
    def outcome(self) -> Literal["done", "stopped", "error"] | None:
        """``done``/``stopped``/``error`` from the trainer's last terminal event in this run."""
        for ev in reversed(self.events):
            if isinstance(ev, TERMINAL_EVENTS):
                return ev.event
        return None

    def progress(self, alive: bool = True) -> JobProgress:
        """Progress of the current run; ``first_loss`` from the very first step of any run."""
        p = progress_from_events(self.events, alive=alive)
        first = next((e.loss for e in self.all_events if isinstance(e, StepEvent) and e.loss is not None), None)
        if first is not None:
            p = p.model_copy(update={"first_loss": first})
        return p

    def interim(self) -> JobProgress:
        """Progress while the job is not over: a terminal trainer event alone does not end it (the runner
        still has to report, and the artifacts to come back)."""
        p = self.progress(alive=True)
        if p.status.is_terminal:
            p = p.model_copy(update={"status": JobStatus.RUNNING, "error": None})
        return p
