"""Private-file helpers shared by the credential store and the preferences: 0700 directories, 0600 atomic
writes. (Where the config dir is comes from the settings: ``Settings.config_dir``.)"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

from vibeml.exceptions import ConfigurationError

__all__ = ["POSIX", "atomic_write_bytes", "ensure_private_dir"]

log = logging.getLogger(__name__)

POSIX = os.name == "posix"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 if missing; if it exists wider open, warn and leave it alone.

    Raises:
        ConfigurationError: The directory cannot be created.
    """
    try:
        if not path.is_dir():
            from vibeml.safe_paths import make_private_dir

            make_private_dir(path)  # 0700 whatever the umask, parents VibeML creates too
        elif POSIX and stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("config directory %s is accessible to other users; `chmod 700` it", path)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the config directory {path}: {exc.strerror or exc}",
            {"path": str(path)},
            "Check its permissions, or point VIBEML_CONFIG_DIR at a writable directory.",
        ) from exc
    return path


def _fsync_dir(path: Path) -> None:
    if not POSIX:
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
            if POSIX:
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
