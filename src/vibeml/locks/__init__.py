"""The lock: the exact versions VibeML is tested with, and what a rented machine installs.

The files beside this module are written by ``make lock`` (``tools/lock.py``, uv's ``pip compile``, universal
for every Python from 3.10) and are the one source of versions:

* ``main.txt``: VibeML with every extra but Unsloth. ``make demo``, ``make test`` and CI install from it (as a
  constraint file), and the trl-lora, qlora and full workflows send a rented machine the part of it they need.
* ``unsloth.txt``: the training extra with Unsloth (which caps transformers, trl and datasets below main's).

What a rented machine installs is *derived* from a lock, never typed: :func:`pinned` takes the packages a
workflow names and returns them and everything they need, transitively (read from uv's ``# via`` notes), each
``name==version`` with its environment marker. A machine whose Python or platform differs gets the lines
whose markers match it, so every Python from 3.10 installs a consistent, tested set.

No third-party package is imported: the client reads this before any training package exists.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from vibeml.exceptions import ConfigurationError

__all__ = ["LOCKS", "Pin", "canonical", "closure", "cuda_floor", "load_lock", "pinned", "project_requirements"]

#: The locks this package ships (name → file beside this module).
LOCKS = {"main": "main.txt", "unsloth": "unsloth.txt"}

_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)\s*(?:;\s*(?P<marker>.+?))?\s*$")
_VIA_ONE = re.compile(r"^\s*#\s+via\s+(?P<who>\S.*?)\s*$")
_VIA_MANY = re.compile(r"^\s*#\s{3,}(?P<who>\S.*?)\s*$")
_PROJECT = "vibeml"


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``Unsloth_Zoo`` → ``unsloth-zoo``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One line of a lock: an exact version, the environments it is for, and who needs it."""

    name: str
    version: str
    marker: str | None
    #: Canonical names of the locked packages that depend on this one (``vibeml`` for the project itself;
    #: requirement files such as ``-r requirements/sky-runtime.in`` are not packages and are left out).
    required_by: tuple[str, ...]

    @property
    def requirement(self) -> str:
        """The line pip or uv installs: ``name==version`` plus the marker, if any."""
        return f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")


def parse_lock(text: str) -> tuple[Pin, ...]:
    """The pins of a lock written by ``uv pip compile`` (its ``# via`` notes included).

    Raises:
        ConfigurationError: A line that is neither a comment nor ``name==version [; marker]``.
    """
    entries: list[tuple[str, str, str | None, list[str]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if not entries or not raw.startswith(" "):
                continue  # the header
            match = _VIA_ONE.match(line) or _VIA_MANY.match(line)
            if match:
                who = match.group("who")
                if not who.startswith("-"):  # "-r file" / "-c file" / "--override file": inputs, not packages
                    entries[-1][3].append(canonical(who.split()[0]))
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigurationError(
                f"line {number} of the lock is not 'name==version [; marker]': {line[:120]!r}",
                {"line": number},
                "Regenerate the lock with `make lock`; it is written by uv, not by hand.",
            )
        entries.append((match.group("name"), match.group("version"), match.group("marker"), []))
    return tuple(Pin(canonical(n), v, m, tuple(dict.fromkeys(w))) for n, v, m, w in entries)


@functools.cache
def load_lock(lock: str = "main") -> tuple[Pin, ...]:
    """The pins of one of the shipped locks (``main`` or ``unsloth``).

    Raises:
        ConfigurationError: Unknown lock name, or a lock file that is missing or damaged.
    """
    filename = LOCKS.get(lock)
    if filename is None:
        raise ConfigurationError(f"unknown lock {lock!r}", {"lock": lock}, f"Use one of: {', '.join(LOCKS)}.")
    try:
        text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"the lock {filename} is missing from this VibeML installation: {exc}",
            {"lock": lock},
            "Reinstall VibeML; the lock files ship inside the package (vibeml/locks/).",
        ) from exc
    return parse_lock(text)


def closure(pins: Iterable[Pin], roots: Iterable[str]) -> tuple[Pin, ...]:
    """``roots`` and every pin they need, transitively, in lock order (every marker variant of each).

    Raises:
        ConfigurationError: A root that the lock does not hold.
    """
    pins = tuple(pins)
    by_name: dict[str, list[Pin]] = {}
    needs: dict[str, set[str]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
        for parent in pin.required_by:
            needs.setdefault(parent, set()).add(pin.name)
    wanted = [canonical(r) for r in roots]
    missing = sorted(r for r in wanted if r not in by_name)
    if missing:
        raise ConfigurationError(
            f"the lock holds no version of {', '.join(missing)}",
            {"missing": missing},
            "Add the package to pyproject.toml (an extra), then `make lock` and `make test`.",
        )
    seen: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(needs.get(name, ()))
    return tuple(p for p in pins if p.name in seen)


def pinned(roots: Iterable[str], lock: str = "main") -> tuple[str, ...]:
    """Requirement lines for ``roots`` and all they need, from ``lock``: what a rented machine installs."""
    return tuple(p.requirement for p in closure(load_lock(lock), roots))


@functools.cache
def cuda_floor() -> float:
    """The CUDA version the locked torch's Linux GPU wheels are built for (``13.0`` for torch 2.13.0), read from
    the lock's ``nvidia-cuda-runtime`` pins: a rented host's driver must support at least that, or the machine
    is paid for and cannot run the trainer.

    Raises:
        ConfigurationError: No lock names a CUDA runtime (a lock without torch's GPU wheels).
    """
    found = [p.version for lock in LOCKS for p in load_lock(lock) if p.name.startswith("nvidia-cuda-runtime")]
    if not found:
        raise ConfigurationError(
            "no lock names torch's CUDA runtime (nvidia-cuda-runtime)",
            {"locks": sorted(LOCKS)},
            "Regenerate the locks with `make lock`.",
        )
    return max(float(".".join(v.split(".")[:2])) for v in found)


_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@functools.cache
def project_requirements(extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Canonical names of what VibeML itself needs, with ``extras`` (read from its installed metadata, i.e.
    pyproject.toml: the names are declared there once).

    Raises:
        ConfigurationError: VibeML's metadata cannot be read (it is not installed), or an unknown extra.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(_PROJECT)
    except metadata.PackageNotFoundError as exc:
        raise ConfigurationError(
            "VibeML's package metadata is missing, so its dependencies are unknown",
            {},
            "Install VibeML (`make install`, or `pip install -e .`) rather than running it from a source folder.",
        ) from exc
    known = set(dist.metadata.get_all("Provides-Extra") or ())
    unknown = sorted(set(extras) - known)
    if unknown:
        raise ConfigurationError(
            f"VibeML has no extra {', '.join(unknown)}",
            {"extras": unknown},
            f"Known extras: {', '.join(sorted(known))}.",
        )
    names: list[str] = []
    for req in dist.requires or ():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if match is None:  # pragma: no cover - metadata written by the build backend
            continue
        marker = req.split(";", 1)[1] if ";" in req else ""
        wanted_by = _EXTRA.findall(marker)
        if not wanted_by or any(e in extras for e in wanted_by):
            names.append(canonical(match.group(1)))
    return tuple(dict.fromkeys(names))
