"""Paths a user names, checked before VibeML reads or writes them.

Input files must be regular files: a FIFO would block the reader for good, and a device such as
``/dev/zero`` never ends. Output paths must be regular files or new paths: replacing ``/dev/full`` (or a
directory, or a socket) with a regular file is never what a user meant. Writes are atomic (a temp file
beside the target, then ``os.replace``: :func:`atomic_write_bytes`, the one helper for every file VibeML
replaces), so an interrupted write leaves the old file whole.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from vibeml.exceptions import ConfigurationError, DatasetError, VibeMLError

__all__ = [
    "atomic_write_bytes",
    "check_input_file",
    "check_output_path",
    "exists",
    "file_kind",
    "is_dir",
    "is_file",
    "make_private_dir",
    "write_text_atomic",
]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode
    except (OSError, ValueError):  # missing, a name too long for the file system, a NUL byte, no permission
        return None


def exists(path: Path) -> bool:
    """``path.exists()`` that is False, not an exception, for names no file can have (too long, NUL)."""
    return _mode(path) is not None


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for impossible names instead of raising."""
    mode = _mode(path)
    return mode is not None and stat.S_ISDIR(mode)


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for impossible names instead of raising."""
    mode = _mode(path)
    return mode is not None and stat.S_ISREG(mode)


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words ("a regular file", "a named pipe (FIFO)", …)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_input_file(path: Path, what: str = "dataset", error: type[VibeMLError] = DatasetError) -> os.stat_result:
    """Stat ``path`` (following links) and refuse anything but a regular file, before it is opened.

    Raises:
        DatasetError (or ``error``): It is a FIFO, a device, a socket or a directory, or cannot be read.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise error(
            f"cannot read {what} {path}: {exc.strerror or exc}",
            {what: str(path)},
            "Check the path and its permissions.",
        ) from exc
    if not stat.S_ISREG(st.st_mode):
        raise error(
            f"{what} {path} is {file_kind(st.st_mode)}, not a regular file",
            {what: str(path), "kind": file_kind(st.st_mode)},
            "Give the path of a data file saved on disk (a pipe or device cannot be read ahead of training).",
        )
    return st


def check_output_path(path: str | Path, *, overwrite: bool = True, what: str = "output") -> Path:
    """``path`` made absolute, if VibeML may write a file there: a new path (missing parent folders are
    created on write) or, with ``overwrite``, an existing regular file.

    Raises:
        ConfigurationError: It is a directory, a device, a FIFO or a socket; it exists and ``overwrite`` is
            off; or a parent is not a folder.
    """
    target = Path(path).expanduser()
    if not str(path).strip():
        raise ConfigurationError(f"no {what} path given", {what: str(path)}, "Give a file path, e.g. ./task.yaml.")
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot use {target} as the {what}: {exc.strerror or exc}", {what: str(target)}, "Choose another path."
        ) from exc
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise ConfigurationError(
                f"{target} is a directory",
                {what: str(target)},
                f"Give a file path inside it, e.g. {target / 'task.yaml'}.",
            )
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(
                f"{target} is {file_kind(st.st_mode)}: VibeML writes only regular files",
                {what: str(target), "kind": file_kind(st.st_mode)},
                "Choose a file path, or '-' to print to stdout where the command offers it.",
            )
        if not overwrite:
            raise ConfigurationError(
                f"{target} already exists", {what: str(target)}, "Choose another path, or add --force to replace it."
            )
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigurationError(
                    f"{parent} is not a folder, so {target} cannot be written",
                    {what: str(target)},
                    "Choose a path inside a folder.",
                )
            break
    return target


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically: a private temp file beside it, fsync, ``os.replace``.

    On any failure the temp file is removed and the old file (if any) is left exactly as it was.

    Raises:
        OSError: The write failed (callers translate it into their own error).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            if os.name == "posix":
                os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> Path:
    """:func:`atomic_write_bytes` for a path a user named: UTF-8 ``text``, missing parent folders created,
    a failure as a typed error.

    Raises:
        ConfigurationError: The folder or the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("utf-8"), mode=mode)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write {path}: {exc.strerror or exc}", {"path": str(path)}, "Choose a writable path."
        ) from exc
    return path


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by this user only (0700, whatever the umask).

    Folders that already exist keep their mode: they may be the user's own (a ``VIBEML_HOME`` they chose).
    Job logs hold users' prompts and data, so every folder VibeML creates for them is private.

    Raises:
        OSError: The folder cannot be created (callers translate it into their own error).
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        for created in missing:
            with contextlib.suppress(OSError):
                os.chmod(created, 0o700)
    return path
