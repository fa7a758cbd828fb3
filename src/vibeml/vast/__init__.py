"""Vast.ai SDK layer: a thread-safe ``VastAI`` client, the search query language and typed errors.

``from vibeml.vast import VastAI`` mirrors the official ``vastai`` SDK's surface (all 153 public methods of
its ``VastAI``; synchronous, returns plain dicts and lists) over one pooled httpx client that many threads
can share; ``AsyncVastAI`` is its asyncio twin. Both build most methods from one endpoint table
(:mod:`vibeml.vast.endpoints`). Names load on first
use, so ``vibeml.vast.models`` (the typed payloads the reports use) imports without httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

_EXPORTS = {
    "AsyncVastAI": "vibeml.vast.aio",
    "DEFAULT_SERVER_URL": "vibeml.vast.client",
    "VastAI": "vibeml.vast.client",
    "resolve_api_key": "vibeml.vast.client",
    "Instance": "vibeml.vast.models",
    "InstanceStatus": "vibeml.vast.models",
    "Offer": "vibeml.vast.models",
    "VastAmbiguousCreateError": "vibeml.vast.models",
    "VastAPIError": "vibeml.vast.models",
    "VastAuthError": "vibeml.vast.models",
    "VastNotFoundError": "vibeml.vast.models",
    "VastQueryError": "vibeml.vast.query",
    "build_search_query": "vibeml.vast.query",
    "parse_order": "vibeml.vast.query",
    "parse_query": "vibeml.vast.query",
    "render_query": "vibeml.vast.query",
}

__all__ = [
    "DEFAULT_SERVER_URL",
    "AsyncVastAI",
    "Instance",
    "InstanceStatus",
    "Offer",
    "VastAI",
    "VastAPIError",
    "VastAmbiguousCreateError",
    "VastAuthError",
    "VastNotFoundError",
    "VastQueryError",
    "build_search_query",
    "parse_order",
    "parse_query",
    "render_query",
    "resolve_api_key",
]

if TYPE_CHECKING:  # pragma: no cover
    from vibeml.vast.aio import AsyncVastAI
    from vibeml.vast.client import DEFAULT_SERVER_URL, VastAI, resolve_api_key
    from vibeml.vast.models import (
        Instance,
        InstanceStatus,
        Offer,
        VastAmbiguousCreateError,
        VastAPIError,
        VastAuthError,
        VastNotFoundError,
    )
    from vibeml.vast.query import VastQueryError, build_search_query, parse_order, parse_query, render_query


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
