"""What differs between the Pythons VibeML runs on (3.10 to 3.13), in one place."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by `make test-compat` on 3.10
    import tomli as tomllib

__all__ = ["tomllib"]
