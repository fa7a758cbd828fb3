"""Fold a trainer event stream into a ``JobProgress`` (used by every backend)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from vibeml.models import HeldOutScore, JobProgress, JobStatus, OomRetry, TrainerEnd
from vibeml.trainer.events import (
    CheckpointEvent,
    CheckpointSkippedEvent,
    DoneEvent,
    ErrorEvent,
    EvalEvent,
    OomRetryEvent,
    SampleEvent,
    ScoreEvent,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainerEvent,
)
from vibeml.trainer.oom import describe

__all__ = ["NO_FINAL_EVENT_MESSAGE", "progress_from_events"]

NO_FINAL_EVENT_MESSAGE = (
    "the trainer exited without a final event (killed, out of memory, or crashed); see the job's log"
)
_STATUS = {
    TrainerEnd.DONE: JobStatus.COMPLETED,
    TrainerEnd.STOPPED: JobStatus.STOPPED,
    TrainerEnd.ERROR: JobStatus.FAILED,
}

_T = TypeVar("_T")


def _known(new: _T | None, old: _T) -> _T:
    """An event's field, unless the event leaves it unknown: then the value an earlier event gave."""
    return old if new is None else new


def _oom_retry(ev: OomRetryEvent) -> OomRetry:
    return OomRetry(
        attempt=ev.attempt,
        step=ev.step,
        failed=describe(
            ev.failed_batch_size,
            ev.failed_gradient_accumulation_steps,
            ev.failed_gradient_checkpointing,
            ev.failed_checkpoint_every_n_layers,
        ),
        next=describe(ev.next_batch_size, ev.next_gradient_accumulation_steps, ev.next_gradient_checkpointing),
        estimated_gib=ev.estimated_gib,
        capacity_gib=ev.capacity_gib,
        peak_gib=ev.peak_gib,
        underestimate_at_least=ev.underestimate_at_least,
    )


def progress_from_events(events: Iterable[TrainerEvent], alive: bool = True) -> JobProgress:
    """Summarise events. ``alive`` says whether the program is still running (for non-terminal streams).

    Terminal events decide the status (done → completed, stopped → stopped, error → failed); without
    one, a live program is running (or pending before ``start``) and a dead one has failed
    (``trainer_end`` is then ``NO_FINAL_EVENT``).
    """
    p = JobProgress(status=JobStatus.PENDING)
    started = False
    end: TrainerEnd | None = None
    for ev in events:
        match ev:
            case StartEvent():
                started = True
                p.max_steps = _known(ev.max_steps, p.max_steps)
                p.resumed_from = _known(ev.resumed_from, p.resumed_from)
                p.world_size = _known(ev.world_size, p.world_size)
                p.num_nodes = _known(ev.num_nodes, p.num_nodes)
                p.strategy = _known(ev.strategy, p.strategy)
                p.global_batch_size = _known(ev.global_batch_size, p.global_batch_size)
            case CheckpointSkippedEvent():
                target = f"resumed from {ev.resumed_from}" if ev.resumed_from else "started from step 0"
                p.notes.append(f"checkpoint {ev.path} was incomplete ({ev.reason}): {target}")
            case StepEvent():
                started = True
                p.step = ev.step
                p.max_steps = _known(ev.max_steps, p.max_steps)
                p.epoch = _known(ev.epoch, p.epoch)
                p.loss = _known(ev.loss, p.loss)
                p.learning_rate = _known(ev.learning_rate, p.learning_rate)
                p.tokens_per_s = _known(ev.tokens_per_s, p.tokens_per_s)
                p.eta_seconds = _known(ev.eta_seconds, p.eta_seconds)
                p.elapsed_seconds = _known(ev.elapsed_seconds, p.elapsed_seconds)
                if p.first_loss is None:
                    p.first_loss = ev.loss
            case EvalEvent():
                started = True
                p.eval_step = ev.step
                p.eval_loss = _known(ev.loss, p.eval_loss)
                p.eval_perplexity = _known(ev.perplexity, p.eval_perplexity)
                if ev.loss is not None and (p.best_eval_loss is None or ev.loss < p.best_eval_loss):
                    p.best_eval_loss = ev.loss
            case CheckpointEvent():
                p.last_checkpoint = ev.path
            case SampleEvent():
                samples = p.samples_before if ev.phase == "before" else p.samples_after
                samples.append({"prompt": ev.prompt, "completion": ev.completion})
            case ScoreEvent():
                score = HeldOutScore(correct=ev.correct, total=ev.total)
                if ev.phase == "before":
                    p.score_before = score
                else:
                    p.score_after = score
            case OomRetryEvent():
                p.oom_retries.append(_oom_retry(ev))
            case DoneEvent():
                end = TrainerEnd.DONE
                p.output_dir = ev.output_dir
                p.step = ev.step
                p.loss = _known(ev.final_loss, p.loss)
                p.first_loss = _known(ev.first_loss, p.first_loss)
                p.elapsed_seconds = _known(ev.elapsed_seconds, p.elapsed_seconds)
                p.eta_seconds = 0.0
                p.eval_loss = _known(ev.final_eval_loss, p.eval_loss)
                p.best_eval_loss = _known(ev.best_eval_loss, p.best_eval_loss)
                p.best_checkpoint = _known(ev.best_checkpoint, p.best_checkpoint)
            case StoppedEvent():
                end = TrainerEnd.STOPPED
                p.last_checkpoint = _known(ev.checkpoint, p.last_checkpoint)
                p.step = _known(ev.step, p.step)
                p.error = f"stopped: {ev.reason}" if ev.reason else "stopped"
            case ErrorEvent():
                end = TrainerEnd.ERROR
                p.error = ev.message or "the trainer failed"
    if end is not None:
        p.status = _STATUS[end]
    elif alive:
        p.status = JobStatus.RUNNING if started else JobStatus.PENDING
    else:
        end = TrainerEnd.NO_FINAL_EVENT
        p.status = JobStatus.FAILED
        p.error = NO_FINAL_EVENT_MESSAGE
    p.trainer_end = end
    return p
