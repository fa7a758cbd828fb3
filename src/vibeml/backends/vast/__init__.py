"""The Vast.ai backend: :class:`VastBackend` (``backend``), offers and live quotes (``offers``), status and
reconcile (``status``), progress from logs (``progress``), SSH transfers (``transport``) and Vast's end of the
supervisor on the rented machine (``remote``: onstart, bill, self-destroy; the program is ``python -m vibeml.remote``).

``VastBackend`` is imported on first use, so that the on-machine supervisor imports only what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

if TYPE_CHECKING:
    from vibeml.backends.vast.backend import VastBackend

__all__ = ["VastBackend"]


__getattr__, __dir__ = lazy_exports(__name__, {"VastBackend": "vibeml.backends.vast.backend"})
