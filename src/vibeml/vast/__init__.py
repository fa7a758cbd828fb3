"""Vast.ai SDK layer: a thread-safe ``VastAI`` client, the search query language and typed errors.

``from vibeml.vast import VastAI`` mirrors the official ``vastai`` SDK's surface (synchronous, returns
plain dicts and lists) over one pooled httpx client that many threads can share.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_SERVER_URL",
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
