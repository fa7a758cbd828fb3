"""The trainer's JSONL event stream: one typed contract, written by the trainer and read by every backend.

Each line is one JSON object: an event model below, tagged by ``event``, with ``time`` (unix seconds).
:data:`TrainerEvent` is their discriminated union and :func:`parse_event` the one way to read a line
back; a torn, corrupt or unknown line is skipped, never fatal (the stream is written by another
process, and a log read may cut it anywhere). Numbers are numbers (``true`` is not 1) and finite: a
non-finite metric (a diverged loss) is recorded as ``null``, as JSON has no NaN. Fields a reader does
not know are ignored, so a newer trainer's stream still reads.

This module imports nothing from VibeML (and not torch): the standalone training script inlines it
whole (:mod:`vibeml.workflows.script`), so the script writes the very same events.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

__all__ = [
    "ECHO_ENV",
    "ECHO_PREFIX",
    "TERMINAL_EVENTS",
    "CheckpointEvent",
    "CheckpointSkippedEvent",
    "DoneEvent",
    "ErrorEvent",
    "EvalEvent",
    "EventWriter",
    "OomRetryEvent",
    "SampleEvent",
    "ScoreEvent",
    "StartEvent",
    "StepEvent",
    "StoppedEvent",
    "TrainerEvent",
    "context_text",
    "dump_event",
    "parse_event",
    "parse_event_lines",
    "read_events",
]

#: When this env var is "1", every event is also printed to stdout as ``ECHO_PREFIX + json``, so a
#: backend that can only read the program's log (a rented instance) still sees the event stream.
ECHO_ENV = "VIBEML_ECHO_EVENTS"
ECHO_PREFIX = "@@vibeml-event "


def _finite_or_none(value: object) -> object:
    """A metric that is not finite (NaN/inf: a diverged loss) is recorded as unknown."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _now() -> float:
    return round(time.time(), 3)


#: A count (steps, rows, parameters): a non-negative int, never a bool or a float.
Count = Annotated[int, Field(ge=0)]
#: An optional finite measurement; NaN/inf become None (JSON has no NaN).
Metric = Annotated[float | None, BeforeValidator(_finite_or_none)]
Text = Annotated[str, Field(min_length=1)]


def _context_or_empty(value: object) -> object:
    """An error's context is for people: any JSON object reads (as text), anything else as none."""
    return context_text(value) if isinstance(value, Mapping) else {}


#: An error's context, each value as text (written by :func:`context_text`).
Context = Annotated[dict[str, str], BeforeValidator(_context_or_empty)]


class _Event(BaseModel):
    """What every event has. Strict: no coercion (``"3"`` is not 3, ``true`` is not 1), finite floats."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, frozen=True, extra="ignore")

    time: float = Field(default_factory=_now, description="When the event was written (unix seconds).")


class StartEvent(_Event):
    """The trainer has loaded the model and data and is about to train."""

    event: Literal["start"] = "start"
    model: str
    dataset: str
    method: Literal["lora", "qlora", "full"]
    device: str
    max_steps: Count | None
    num_examples: Count | None = None
    resumed_from: str | None = None
    dataset_format: str | None = None
    skipped_rows: Count = 0
    dtype: str | None = None
    trainable_params: Count | None = None
    total_params: Count | None = None
    engine: Literal["transformers", "unsloth"] | None = None
    attn_implementation: str | None = None
    gradient_checkpointing: bool | None = None
    checkpoint_every_n_layers: Count | None = None
    use_liger_kernel: bool | None = None
    packing: bool | None = None
    batch_size: Count | None = Field(None, description="Sequences per process per micro-step.")
    gradient_accumulation_steps: Count | None = None
    world_size: Count | None = Field(None, description="Trainer processes (one per GPU; torchrun's WORLD_SIZE).")
    num_nodes: Count | None = Field(None, description="Machines the processes run on.")
    strategy: Literal["single", "ddp", "fsdp"] | None = None
    global_batch_size: Count | None = Field(
        None, description="Sequences per optimizer step over all processes: batch × accumulation × world size."
    )


class StepEvent(_Event):
    """One logged optimizer step."""

    event: Literal["step"] = "step"
    step: Count
    max_steps: Count | None = None
    epoch: Metric = None
    loss: Metric = None
    learning_rate: Metric = None
    tokens_per_s: Metric = None
    eta_seconds: Metric = None
    elapsed_seconds: Metric = None


class EvalEvent(_Event):
    """One evaluation on the eval set: its mean loss and perplexity (exp of the loss)."""

    event: Literal["eval"] = "eval"
    step: Count
    loss: Metric = None
    perplexity: Metric = None
    mean_token_accuracy: Metric = None
    num_examples: Count | None = None
    runtime_seconds: Metric = None
    elapsed_seconds: Metric = None


class SampleEvent(_Event):
    """A generation from a sample prompt, before or after training."""

    event: Literal["sample"] = "sample"
    phase: Literal["before", "after"]
    prompt: str
    completion: str


class ScoreEvent(_Event):
    """Exact match on held-out prompts (never trained on), before or after training."""

    event: Literal["score"] = "score"
    phase: Literal["before", "after"]
    correct: Count
    total: Annotated[int, Field(ge=1)]
    seconds: Metric = None

    @model_validator(mode="after")
    def _at_most_total(self) -> ScoreEvent:
        if self.correct > self.total:
            raise ValueError(f"{self.correct} right of {self.total}")
        return self


class CheckpointEvent(_Event):
    """A checkpoint was saved (the one to resume from)."""

    event: Literal["checkpoint"] = "checkpoint"
    step: Count
    path: Text


class CheckpointSkippedEvent(_Event):
    """A checkpoint was found incomplete (torn, partial) and passed over when choosing where to resume."""

    event: Literal["checkpoint_skipped"] = "checkpoint_skipped"
    path: Text
    reason: str
    resumed_from: str | None = None  # the checkpoint used instead (None: the run starts from step 0)


class DoneEvent(_Event):
    """Terminal: training finished and the result is saved."""

    event: Literal["done"] = "done"
    output_dir: Text
    step: Count
    first_loss: Metric = None
    final_loss: Metric = None
    elapsed_seconds: Metric = None
    merged_dir: str | None = None
    final_eval_loss: Metric = None
    best_eval_loss: Metric = None
    best_checkpoint: str | None = None  # keep_best: the checkpoint delivered


class StoppedEvent(_Event):
    """Terminal: asked to stop (signal, budget, request); ``checkpoint`` is where to resume from."""

    event: Literal["stopped"] = "stopped"
    reason: str
    step: Count | None = None  # None: not known to the writer (e.g. a budget stop before start)
    checkpoint: str | None = None
    elapsed_seconds: Metric = None


class OomRetryEvent(_Event):
    """Training ran out of memory in its first steps; the trainer retries with a safer configuration.

    ``failed_*`` is the configuration that ran out, ``next_*`` the one tried now (same effective batch).
    The estimate error, for recalibrating the memory model: ``estimated_gib`` is what the estimator
    predicted for the failed configuration and ``capacity_gib`` the device's memory (CUDA), so
    ``capacity_gib / estimated_gib`` is a lower bound on real ÷ estimated peak (``underestimate_at_least``);
    ``peak_gib`` is the largest allocation torch saw before it failed. Unknown values are null (a CPU).
    """

    event: Literal["oom_retry"] = "oom_retry"
    attempt: Annotated[int, Field(ge=1)] = Field(description="1 for the first retry, 2 for the second...")
    step: Count = Field(description="The optimizer step the failed attempt had reached.")
    message: str = ""
    failed_batch_size: Annotated[int, Field(ge=1)]
    failed_gradient_accumulation_steps: Annotated[int, Field(ge=1)]
    failed_gradient_checkpointing: bool
    failed_checkpoint_every_n_layers: Count = 1
    next_batch_size: Annotated[int, Field(ge=1)]
    next_gradient_accumulation_steps: Annotated[int, Field(ge=1)]
    next_gradient_checkpointing: bool | None = None  # None: as the failed attempt chose
    estimated_gib: Metric = None
    capacity_gib: Metric = None
    peak_gib: Metric = None
    underestimate_at_least: Metric = None


class ErrorEvent(_Event):
    """Terminal: the trainer failed; the message and suggestion are for the user."""

    event: Literal["error"] = "error"
    message: str
    error_type: str | None = None
    recovery_suggestion: str | None = None
    context: Context = Field(default_factory=dict)


TrainerEvent = Annotated[
    StartEvent
    | StepEvent
    | EvalEvent
    | SampleEvent
    | ScoreEvent
    | CheckpointEvent
    | CheckpointSkippedEvent
    | OomRetryEvent
    | DoneEvent
    | StoppedEvent
    | ErrorEvent,
    Field(discriminator="event"),
]
#: The events that end a run (for ``isinstance``).
TERMINAL_EVENTS = (DoneEvent, StoppedEvent, ErrorEvent)

_ADAPTER: TypeAdapter[TrainerEvent] = TypeAdapter(TrainerEvent)


def parse_event(text: str) -> TrainerEvent | None:
    """One JSON line → its event, or None for anything else (torn, corrupt, unknown kind, wrong types)."""
    try:
        return _ADAPTER.validate_json(text)
    except ValueError:  # pydantic's ValidationError (bad JSON included) and text that is not UTF-8
        return None


def dump_event(event: TrainerEvent) -> str:
    """One event as its JSON line (without the newline): ASCII, so no character in it splits the line."""
    data = event.model_dump(mode="json")
    return json.dumps({"event": data.pop("event"), **data}, ensure_ascii=True, allow_nan=False)


def context_text(context: Mapping[str, object] | None) -> dict[str, str]:
    """An error's context as text values (a value that is not a string is written as JSON)."""
    out: dict[str, str] = {}
    for key, value in (context or {}).items():
        if isinstance(value, str):
            out[str(key)] = value
        else:
            try:
                out[str(key)] = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
            except ValueError:  # NaN somewhere inside, or a cycle
                out[str(key)] = repr(value)
    return out


class EventWriter:
    """Appends events, one line each, flushed and fsynced so a reader never sees half a line."""

    def __init__(self, path: str | Path, echo: bool | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.echo = os.environ.get(ECHO_ENV) == "1" if echo is None else echo
        # Under torchrun every rank runs the trainer; only rank 0 speaks for the job.
        self.enabled = os.environ.get("RANK", "0") in ("", "0")

    def emit(self, event: TrainerEvent) -> TrainerEvent:
        """Append ``event`` (and echo it when asked); returns it."""
        if not self.enabled:
            return event
        line = dump_event(event) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            if self.echo:
                sys.stdout.write(ECHO_PREFIX + line)
                sys.stdout.flush()
        return event


def read_events(path: str | Path) -> Iterator[TrainerEvent]:
    """Yield the complete events of a file; a torn, corrupt or unknown line is skipped, never fatal."""
    try:
        fh = open(Path(path), encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # no stream (yet) at that path
        return
    with fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # still being written
            event = parse_event(line) if line.strip() else None
            if event is not None:
                yield event


def parse_event_lines(lines: Iterable[str]) -> Iterator[TrainerEvent]:
    """Events echoed into a log (``ECHO_PREFIX`` lines, anywhere in the line); everything else is skipped."""
    for line in lines:
        idx = line.find(ECHO_PREFIX)
        if idx >= 0:
            event = parse_event(line[idx + len(ECHO_PREFIX) :])
            if event is not None:
                yield event
