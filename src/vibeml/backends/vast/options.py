"""Settings of the Vast.ai backend: the image, the safety floors and the timings.

They are the ``vast`` section of VibeML's settings tree (:class:`vibeml.settings.VastSettings`, read from
``VIBEML_VAST_<FIELD>`` variables when the front end builds its :class:`~vibeml.settings.Settings`, e.g.
``VIBEML_VAST_POLL_INTERVAL=0.05``); the backend receives ``settings.vast``, tests pass their own.
"""

from __future__ import annotations

from vibeml.settings import DEFAULT_IMAGE
from vibeml.settings import VastSettings as VastOptions

__all__ = ["DEFAULT_IMAGE", "VastOptions"]
