"""A job's curves: train and eval loss and the learning rate over steps, cost over time against the cap.

Everything comes from what VibeML already records: the trainer's event stream in the job's folder
(``events.jsonl``, mirrored there by every backend) and, for paid jobs, the cost samples the service
writes to the job's lifecycle events as the accrued cost rises (:func:`record_cost_sample`). Nothing
here imports torch or a plotting library: ``vibeml status`` draws a unicode sparkline with
:func:`sparkline`, and :mod:`vibeml.plot` draws the PNG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vibeml.trainer.events import EvalEvent, StepEvent, TrainerEvent, read_events

if TYPE_CHECKING:
    from vibeml.jobs.store import JobStore
    from vibeml.models import JobRecord

__all__ = ["COST_EVENT", "Curves", "curves_from_events", "job_curves", "record_cost_sample", "sparkline"]

#: The lifecycle event kind of a cost sample: ``{"cost_so_far": USD}`` at the event's time.
COST_EVENT = "cost"
_BARS = "▁▂▃▄▅▆▇█"


@dataclass
class Curves:
    """Series of (x, y) points; ``cost`` is (minutes since the job was created, USD)."""

    train_loss: list[tuple[float, float]] = field(default_factory=list)
    eval_loss: list[tuple[float, float]] = field(default_factory=list)
    learning_rate: list[tuple[float, float]] = field(default_factory=list)
    cost: list[tuple[float, float]] = field(default_factory=list)
    cap: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.train_loss or self.eval_loss or self.learning_rate or self.cost)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def curves_from_events(events: Iterable[TrainerEvent]) -> Curves:
    """Train loss and learning rate from ``step`` events, eval loss from ``eval`` events (a resumed run's
    repeated steps replace the earlier points at the same step)."""
    train: dict[int, float] = {}
    lr: dict[int, float] = {}
    held: dict[int, float] = {}
    for ev in events:
        if isinstance(ev, StepEvent):
            if ev.loss is not None and _finite(ev.loss):
                train[ev.step] = ev.loss
            if ev.learning_rate is not None and _finite(ev.learning_rate):
                lr[ev.step] = ev.learning_rate
        elif isinstance(ev, EvalEvent) and ev.loss is not None and _finite(ev.loss):
            held[ev.step] = ev.loss
    return Curves(
        train_loss=[(float(s), v) for s, v in sorted(train.items())],
        eval_loss=[(float(s), v) for s, v in sorted(held.items())],
        learning_rate=[(float(s), v) for s, v in sorted(lr.items())],
    )


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def job_curves(record: JobRecord, job_dir: Path, lifecycle: Sequence[dict[str, Any]] = ()) -> Curves:
    """A job's curves: its event stream, plus cost samples and the cap when it ran on a paid backend."""
    curves = curves_from_events(read_events(job_dir / "events.jsonl"))
    samples: list[tuple[float, float]] = []
    start = record.created_at
    for item in lifecycle:
        when = _when(item.get("time"))
        cost = item.get("cost_so_far")
        if item.get("kind") != COST_EVENT or when is None or not isinstance(cost, (int, float)):
            continue
        minutes = max(0.0, (when - start).total_seconds() / 60)
        samples.append((minutes, float(cost)))
    if samples or (record.request.max_cost is not None and record.backend != "local"):
        curves.cost = [(0.0, 0.0), *samples]
        curves.cap = record.request.max_cost
    return curves


def record_cost_sample(store: JobStore, record: JobRecord, cost: float) -> bool:
    """Write a cost sample when the accrued cost rose by a step worth drawing since the last one (at most
    about 200 samples up to the cap). Returns whether one was written."""
    if not math.isfinite(cost) or cost <= 0:
        return False
    step = max(0.001, (record.request.max_cost or 1.0) / 200)
    last = 0.0
    for item in reversed(store.events(record.job_id)):
        if item.get("kind") == COST_EVENT and isinstance(item.get("cost_so_far"), (int, float)):
            last = float(item["cost_so_far"])
            break
    if cost - last < step:
        return False
    store.add_event(record.job_id, COST_EVENT, {"cost_so_far": round(cost, 6)})
    return True


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """Values as a line of unicode block characters, lowest ▁ to highest █ (resampled to ``width``)."""
    points = [v for v in values if math.isfinite(v)]
    if not points:
        return ""
    if len(points) > width:  # the mean of each of ``width`` equal slices
        chunks = [points[i * len(points) // width : (i + 1) * len(points) // width] for i in range(width)]
        points = [sum(c) / len(c) for c in chunks if c]
    low, high = min(points), max(points)
    span = high - low
    if span <= 0:
        return _BARS[len(_BARS) // 2 - 1] * len(points)
    return "".join(_BARS[min(len(_BARS) - 1, int((v - low) / span * (len(_BARS) - 1) + 0.5))] for v in points)
