"""Where a run starts: its own newest complete checkpoint, else the earlier job's one it was given.

A run restarted in its own job folder (a preempted spot machine, a relaunch of the same job) continues
from its newest complete checkpoint; a new job made by ``vibeml resume`` / ``--resume-from`` starts from
``resume_from_checkpoint`` (checked again here: it may have been copied to another machine). Incomplete
checkpoints passed over are reported as ``checkpoint_skipped`` events and on the log.
"""

from __future__ import annotations

from pathlib import Path

from vibeml.exceptions import TrainingError
from vibeml.trainer.checkpoints import checkpoint_problem, find_resume_point
from vibeml.trainer.config import TrainerConfig
from vibeml.trainer.events import CheckpointSkippedEvent, EventWriter

__all__ = ["choose_resume_checkpoint"]


def choose_resume_checkpoint(config: TrainerConfig, writer: EventWriter) -> Path | None:
    """The checkpoint to resume from (None: from step 0); emits an event per incomplete one skipped.

    Raises:
        TrainingError: ``resume_from_checkpoint`` is given but is not a complete checkpoint.
    """
    if not config.resume:
        return None
    point = find_resume_point(config.checkpoint_dir)
    chosen = point.checkpoint
    if chosen is None and config.resume_from_checkpoint:
        given = Path(config.resume_from_checkpoint)
        problem = checkpoint_problem(given)
        if problem is not None:
            raise TrainingError(
                f"cannot resume from {given}: {problem}",
                {"resume_from_checkpoint": str(given)},
                "Resume from another job, or launch afresh (the checkpoint was damaged or only partly copied).",
            )
        chosen = given
    for path, why in point.skipped:
        writer.emit(CheckpointSkippedEvent(path=str(path), reason=why, resumed_from=str(chosen) if chosen else None))
        target = f"resuming from {chosen}" if chosen else "starting from step 0"
        print(f"[vibeml] checkpoint {path} is incomplete ({why}): {target}", flush=True)
    return chosen
