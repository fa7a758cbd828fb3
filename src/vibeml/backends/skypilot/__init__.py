"""The SkyPilot backend: :class:`SkyPilotBackend` (``backend``), the task and its scripts (``task``), the
accelerator catalogue (``catalog``) and status/artifacts (``status``).

``SkyPilotBackend`` is imported on first use, so that the catalogue (used by estimates and plans) never
brings the backend or SkyPilot with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

if TYPE_CHECKING:
    from vibeml.backends.skypilot.backend import SkyPilotBackend

__all__ = ["SkyPilotBackend"]


__getattr__, __dir__ = lazy_exports(__name__, {"SkyPilotBackend": "vibeml.backends.skypilot.backend"})
