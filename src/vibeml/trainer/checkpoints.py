"""Which checkpoint a run may resume from: what makes a ``checkpoint-N`` folder complete.

A checkpoint is **complete** when its marker, ``vibeml-checkpoint.json``, is there and still describes
it. The trainer writes the marker last, after the Trainer has saved the weights, the optimizer and
scheduler state and ``trainer_state.json`` (:func:`write_marker`, from the ``on_save`` callback): it
records the step and the size of every file in the folder. A folder is then checked
(:func:`checkpoint_problem`) for: the marker (valid JSON, naming this step), every listed file present
with its recorded size, and ``trainer_state.json`` readable JSON with a ``global_step``. A run killed
while saving leaves no marker; a file truncated or replaced afterwards (a torn ``trainer_state.json``,
a half-copied download) no longer matches its size.

Folders without a marker (written by an older VibeML or by the standalone script) are accepted when
``trainer_state.json`` is readable JSON with a ``global_step`` and weights are present (the Trainer
writes ``trainer_state.json`` after the weights).

:func:`find_resume_point` picks the newest complete checkpoint and names each newer one it passed over
and why, so the caller can say so. Only the standard library is used (no torch, no VibeML imports).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MARKER",
    "ResumePoint",
    "checkpoint_problem",
    "checkpoint_step",
    "find_resume_point",
    "write_marker",
]

MARKER = "vibeml-checkpoint.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint to resume from (None: none usable) and the newer ones skipped, with why."""

    checkpoint: Path | None
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def step(self) -> int:
        return checkpoint_step(self.checkpoint) if self.checkpoint is not None else 0

    def notes(self) -> list[str]:
        """One sentence per skipped checkpoint, for the log and the job's events."""
        target = f"resuming from {self.checkpoint.name}" if self.checkpoint is not None else "starting from step 0"
        return [f"checkpoint {p.name} is incomplete ({why}): {target}" for p, why in self.skipped]


def checkpoint_step(path: str | Path) -> int:
    """The N of a ``checkpoint-N`` folder (0 for any other name)."""
    m = _CHECKPOINT.match(Path(path).name)
    return int(m.group(1)) if m else 0


def _files(folder: Path) -> dict[str, int]:
    """Every regular file under ``folder`` but the marker: relative POSIX path → size in bytes."""
    out: dict[str, int] = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            p = Path(root) / name
            rel = p.relative_to(folder).as_posix()
            if rel == MARKER or name.startswith(f".{MARKER}"):
                continue
            if p.is_file():
                out[rel] = p.stat().st_size
    return out


def _state_problem(folder: Path) -> str | None:
    path = folder / "trainer_state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"trainer_state.json is not readable JSON: {type(exc).__name__}"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return "trainer_state.json has no global_step"
    return None


def write_marker(folder: str | Path, step: int) -> Path:
    """Declare ``folder`` complete: the step and every file's size, written atomically, last.

    Raises:
        ValueError: ``trainer_state.json`` is missing or unreadable (the save did not finish).
        OSError: The marker cannot be written.
    """
    root = Path(folder)
    problem = _state_problem(root)
    if problem is not None:
        raise ValueError(f"checkpoint {root} is not complete: {problem}")
    data = {"version": 1, "step": int(step), "files": _files(root)}
    tmp = root / f".{MARKER}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / MARKER)
    return root / MARKER


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be resumed from, or None when it is complete (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        return "not a folder"
    marker = root / MARKER
    if marker.exists():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return f"{MARKER} is not readable JSON"
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not files:
            return f"{MARKER} lists no files"
        if _CHECKPOINT.match(root.name) and data.get("step") != checkpoint_step(root):
            return f"{MARKER} names step {data.get('step')}, not {checkpoint_step(root)}"
        problem = _state_problem(root)
        if problem is not None:
            return problem
        for rel, size in sorted(files.items()):
            p = root / rel
            if not p.is_file():
                return f"{rel} is missing"
            actual = p.stat().st_size
            if actual != size:
                return f"{rel} has {actual} bytes, not the {size} saved"
        return None
    problem = _state_problem(root)
    if problem is not None:
        return problem
    if not any((root / w).is_file() for w in _WEIGHTS):
        return "no weights"
    return None


def find_resume_point(checkpoint_dir: str | Path) -> ResumePoint:
    """The newest complete ``checkpoint-N`` under ``checkpoint_dir``, and the newer incomplete ones."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return ResumePoint(None)
    found = sorted(
        ((checkpoint_step(c), c) for c in root.iterdir() if _CHECKPOINT.match(c.name) and c.is_dir()), reverse=True
    )
    skipped: list[tuple[Path, str]] = []
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return ResumePoint(path, skipped)
        skipped.append((path, problem))
    return ResumePoint(None, skipped)
