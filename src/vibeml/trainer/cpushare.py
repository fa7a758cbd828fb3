"""Share a machine's cores among VibeML trainers that run on its CPU at the same time.

PyTorch gives every process one thread per core, and its OpenMP threads spin while they wait. Two
CPU fine-tunes on one machine therefore fight over every core. Measured on 2 cores, two concurrent
8-step demo runs take 5.8 s a step instead of 0.15 s.

Each CPU trainer registers itself in a per-user directory (one file per process, holding its start
time so that a reused pid is not counted). Every few seconds it sets ``torch.set_num_threads`` to its
share of the cores, so the shares follow as runs start and finish. It is not used when the user chose a
thread count (``torch_threads`` in the config, or ``OMP_NUM_THREADS``), nor on a GPU.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CpuShare"]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), ``""`` where /proc is absent, None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():  # no procfs: fall back to "is the pid alive"
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except PermissionError:
                return ""
            return ""
        return None
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class CpuShare:
    """This process's slot among the CPU trainers of this user on this machine."""

    def __init__(
        self,
        registry: Path | None = None,
        cores: int | None = None,
        set_threads: Callable[[int], None] | None = None,
        every_seconds: float = 2.0,
    ) -> None:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        self.registry = registry or Path(tempfile.gettempdir()) / f"vibeml-cpu-trainers-{uid}"
        self.cores = cores or (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )
        self._set_threads = set_threads
        self.every_seconds = every_seconds
        self.pid = os.getpid()
        self.threads: int | None = None
        self._last_check = 0.0
        self._last_peers = 1

    def __enter__(self) -> CpuShare:
        try:
            self.registry.mkdir(mode=0o700, parents=True, exist_ok=True)
            if hasattr(os, "getuid") and self.registry.stat().st_uid != os.getuid():
                return self  # someone else's directory (in a shared /tmp): not trusted, no sharing
            (self.registry / str(self.pid)).write_text(_start_time(self.pid) or "", encoding="utf-8")
        except OSError:  # sharing is an optimisation: without the directory every run takes all cores
            return self
        self.rebalance()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            (self.registry / str(self.pid)).unlink()
        except OSError:
            pass

    def peers(self) -> int:
        """CPU trainers running now, this one included; entries of finished processes are removed."""
        count = 0
        try:
            entries = list(self.registry.iterdir())
        except OSError:
            return 1
        for entry in entries:
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid == self.pid:
                count += 1
                continue
            try:
                recorded = entry.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            now = _start_time(pid)
            if now is None or (recorded and now and recorded != now):
                try:
                    entry.unlink()
                except OSError:
                    pass
                continue
            count += 1
        return max(count, 1)

    def share(self) -> int:
        self._last_peers = self.peers()
        return max(1, self.cores // self._last_peers)

    def describe(self) -> str:
        others = self._last_peers - 1
        if others <= 0:
            return f"cpu threads: {self.threads} of {self.cores} cores"
        return (
            f"cpu threads: {self.threads} of {self.cores} cores, shared with {others} other CPU "
            f"fine-tune{'s' if others > 1 else ''} on this machine"
        )

    def rebalance(self, force: bool = True) -> int | None:
        """Set this process's thread count to its share (at most every ``every_seconds`` unless forced)."""
        now = time.monotonic()
        if not force and now - self._last_check < self.every_seconds:
            return self.threads
        self._last_check = now
        threads = self.share()
        if threads != self.threads:
            (self._set_threads or _torch_set_num_threads)(threads)
            self.threads = threads
        return threads


def _torch_set_num_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
