"""Which process is which: start times that tell a reused pid apart, and whether a recorded process still runs.

One place for what the backends and the service share about processes: the local trainer's process group,
a Vast launcher recorded in a handle, the launcher recorded in a job's "launching" event.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["process_alive", "process_state", "start_time"]


def process_state(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc, or None when the process is gone or unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks (None where /proc cannot tell)."""
    info = process_state(pid)
    return None if info is None else info[1]


def process_alive(pid: int, start: int | None = None) -> bool:
    """Is ``pid`` running and (when ``start`` is known) still the process that was recorded?"""
    if pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        info = process_state(pid)
        if info is None:
            return False
        state, started = info
        if state in ("Z", "X"):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            return False
        return start is None or started == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
