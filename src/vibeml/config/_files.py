"""Private-file helpers shared by the credential store and the preferences: 0700 directories, 0600 atomic
writes (:func:`vibeml.safe_paths.atomic_write_bytes`, re-exported here). (Where the config dir is comes from
the settings: ``Settings.config_dir``.)"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from vibeml.exceptions import ConfigurationError
from vibeml.safe_paths import atomic_write_bytes, make_private_dir

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
