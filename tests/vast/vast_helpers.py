"""Helpers shared by the Vast SDK tests (``from tests.vast.vast_helpers import …``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vibeml.vast import VastAI

#: A key that looks real; tests assert it never leaks anywhere.
SECRET_KEY = "vk_live_3f9c2a7be41d4c0f9a8e6d5c4b3a2910"


def fast_sleep(seconds: float) -> None:
    """Retries and polls wait for real, but never more than 5 ms."""
    time.sleep(min(seconds, 0.005))


def first_offer(client: VastAI, query: str = "", **kwargs: Any) -> dict[str, Any]:
    """The best-scored offer for a query (any verified, rentable machine by default)."""
    offers = client.search_offers(query, limit=1, **kwargs)
    assert offers, f"the fake market has no offer for {query!r}"
    return offers[0]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.005)
