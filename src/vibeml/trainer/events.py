"""The trainer's JSONL event stream: written by the trainer, read by every backend.

Each line is one JSON object with ``event`` and ``time`` (unix seconds). Kinds:

- ``start``: ``model``, ``dataset``, ``method``, ``max_steps``, ``num_examples``, ``device``, ``resumed_from``
- ``step``: ``step``, ``max_steps``, ``epoch``, ``loss``, ``learning_rate``, ``tokens_per_s``,
  ``eta_seconds``, ``elapsed_seconds``
- ``sample``: ``phase`` ("before"/"after"), ``prompt``, ``completion``
- ``checkpoint``: ``step``, ``path``
- ``done``: ``output_dir``, ``step``, ``first_loss``, ``final_loss``, ``elapsed_seconds``
- ``stopped``: ``step``, ``checkpoint``, ``reason``
- ``error``: ``message``, ``error_type``, ``recovery_suggestion``
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["ECHO_ENV", "ECHO_PREFIX", "TERMINAL_EVENTS", "EventWriter", "parse_event_lines", "read_events"]

TERMINAL_EVENTS = frozenset({"done", "stopped", "error"})

#: When this env var is "1", every event is also printed to stdout as ``ECHO_PREFIX + json``, so a
#: backend that can only read the program's log (a rented instance) still sees the event stream.
ECHO_ENV = "VIBEML_ECHO_EVENTS"
ECHO_PREFIX = "@@vibeml-event "


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Appends events, one line each, flushed and fsynced so a reader never sees half a line."""

    def __init__(self, path: str | Path, echo: bool | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.echo = os.environ.get(ECHO_ENV) == "1" if echo is None else echo
        # Under torchrun every rank runs the trainer; only rank 0 speaks for the job.
        self.enabled = os.environ.get("RANK", "0") in ("", "0")

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": round(time.time(), 3), **_clean(fields)}
        if not self.enabled:
            return record
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            if self.echo:
                sys.stdout.write(ECHO_PREFIX + line)
                sys.stdout.flush()
        return record


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield complete events; a torn or corrupt line is skipped, never fatal."""
    p = Path(path)
    try:
        fh = open(p, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # still being written
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("event"), str):
                yield obj


def parse_event_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Events echoed into a log (``ECHO_PREFIX`` lines); everything else is skipped."""
    for line in lines:
        idx = line.find(ECHO_PREFIX)
        if idx < 0:
            continue
        try:
            obj = json.loads(line[idx + len(ECHO_PREFIX) :])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event"), str):
            yield obj
