"""The SkyPilot backend: :class:`SkyPilotBackend` (``backend``), the task and its scripts (``task``), the
accelerator catalogue (``catalog``) and status/artifacts (``status``).

``SkyPilotBackend`` is imported on first use, so that the catalogue (used by estimates and plans) never
brings the backend or SkyPilot with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vibeml.backends.skypilot.backend import SkyPilotBackend

__all__ = ["SkyPilotBackend"]


def __getattr__(name: str) -> Any:
    if name == "SkyPilotBackend":
        from vibeml.backends.skypilot.backend import SkyPilotBackend

        return SkyPilotBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
