"""Fold a trainer event stream into a ``JobProgress`` (used by every backend)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vibeml.models import JobProgress, JobStatus

__all__ = ["progress_from_events"]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def progress_from_events(events: Iterable[dict[str, Any]], alive: bool = True) -> JobProgress:
    """Summarise events. ``alive`` says whether the program is still running (for non-terminal streams).

    Terminal events decide the status (done → completed, stopped → stopped, error → failed); without
    one, a live program is running (or pending before ``start``) and a dead one has failed.
    """
    p: dict[str, Any] = {"status": JobStatus.PENDING, "samples_before": [], "samples_after": []}
    started = False
    terminal: str | None = None
    for ev in events:
        kind = ev.get("event")
        if kind == "start":
            started = True
            if _int(ev.get("max_steps")):
                p["max_steps"] = ev["max_steps"]
        elif kind == "step":
            started = True
            for key in ("step", "max_steps"):
                if _int(ev.get(key)):
                    p[key] = ev[key]
            for key in ("epoch", "loss", "learning_rate", "tokens_per_s", "eta_seconds", "elapsed_seconds"):
                val = _num(ev.get(key))
                if val is not None:
                    p[key] = val
            if p.get("first_loss") is None and _num(ev.get("loss")) is not None:
                p["first_loss"] = float(ev["loss"])
        elif kind == "checkpoint":
            if isinstance(ev.get("path"), str):
                p["last_checkpoint"] = ev["path"]
        elif kind == "sample":
            phase = ev.get("phase")
            entry = {"prompt": str(ev.get("prompt", "")), "completion": str(ev.get("completion", ""))}
            if phase == "before":
                p["samples_before"].append(entry)
            elif phase == "after":
                p["samples_after"].append(entry)
        elif kind == "done":
            terminal = "done"
            if isinstance(ev.get("output_dir"), str):
                p["output_dir"] = ev["output_dir"]
            if _int(ev.get("step")):
                p["step"] = ev["step"]
            for src, dst in (("final_loss", "loss"), ("first_loss", "first_loss")):
                val = _num(ev.get(src))
                if val is not None:
                    p[dst] = val
            val = _num(ev.get("elapsed_seconds"))
            if val is not None:
                p["elapsed_seconds"] = val
            p["eta_seconds"] = 0.0
        elif kind == "stopped":
            terminal = "stopped"
            if isinstance(ev.get("checkpoint"), str):
                p["last_checkpoint"] = ev["checkpoint"]
            if _int(ev.get("step")):
                p["step"] = ev["step"]
            if ev.get("reason"):
                p["error"] = f"stopped: {ev['reason']}"
        elif kind == "error":
            terminal = "error"
            p["error"] = str(ev.get("message") or "the trainer failed")
    if terminal == "done":
        p["status"] = JobStatus.COMPLETED
    elif terminal == "stopped":
        p["status"] = JobStatus.STOPPED
    elif terminal == "error":
        p["status"] = JobStatus.FAILED
    elif alive:
        p["status"] = JobStatus.RUNNING if started else JobStatus.PENDING
    else:
        p["status"] = JobStatus.FAILED
        p["error"] = "the trainer exited without a final event (killed, out of memory, or crashed); see the job's log"
    return JobProgress.model_validate(p)
