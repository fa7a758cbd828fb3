"""The HTTP retry schedule, exactly: attempts, waits and Retry-After, over an in-process transport.

``VastHTTP.send`` runs on :func:`vibeml.exceptions.retry_with_backoff`; these pin what it did as a
hand-written loop: 0.15 s × 1.5ⁿ⁻¹ plus 0-25 % jitter, ``retry`` attempts in all, no wait after the last,
a ``Retry-After`` capped at ``max_retry_after`` (the backoff itself is not capped by it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.vast.vast_helpers import SECRET_KEY
from vibeml.vast import VastAI, VastAPIError, VastNotFoundError

LOW = [0.15, 0.225, 0.3375]  # 0.15 × 1.5ⁿ⁻¹, jitter at its low end
HIGH = [0.1875, 0.28125, 0.421875]  # … at its high end (+25 %)


def _answers(*steps: int | tuple[int, dict[str, str]] | type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that plays ``steps`` in order: a status, (status, headers), or an httpx error to raise."""
    it: Iterator[int | tuple[int, dict[str, str]] | type[Exception]] = iter(steps)

    def handle(request: httpx.Request) -> httpx.Response:
        step = next(it)
        if isinstance(step, type):
            raise step("injected", request=request)  # type: ignore[call-arg]
        status, headers = step if isinstance(step, tuple) else (step, {})
        body = {"id": 1, "username": "me"} if status == 200 else {"error": "x", "msg": "injected"}
        return httpx.Response(status, json=body, headers=headers)

    return handle


def _client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float], **kw: object) -> VastAI:
    requests: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    client = VastAI(
        api_key=SECRET_KEY,
        server_url="https://vast.test",
        transport=httpx.MockTransport(recording),
        sleep=sleeps.append,
        quiet=True,
        **kw,  # type: ignore[arg-type]
    )
    client.requests = requests  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize(("end", "expected"), [("low", LOW), ("high", HIGH)])
def test_backoff_schedule(monkeypatch: pytest.MonkeyPatch, end: str, expected: list[float]) -> None:
    monkeypatch.setattr(random, "uniform", (lambda a, b: a) if end == "low" else (lambda a, b: b))
    sleeps: list[float] = []
    with _client(_answers(503, 502, 504, 200), sleeps, retry=4) as client:
        assert client.show_user()["id"] == 1
        assert len(client.requests) == 4  # type: ignore[attr-defined]
    assert sleeps == pytest.approx(expected)


def test_spent_attempts_return_the_last_status_with_no_wait_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: a)
    sleeps: list[float] = []
    with _client(_answers(503, 503, 503), sleeps, retry=3) as client:
        with pytest.raises(VastAPIError) as info:
            client.show_user()
        assert len(client.requests) == 3  # type: ignore[attr-defined]
    assert info.value.status == 503 and info.value.retryable
    assert sleeps == pytest.approx(LOW[:2])


def test_connection_errors_spend_the_attempts_then_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: a)
    sleeps: list[float] = []
    with _client(_answers(httpx.ConnectError, httpx.ConnectError, httpx.ConnectError), sleeps, retry=3) as client:
        with pytest.raises(VastAPIError) as info:
            client.show_user()
    assert info.value.error == "connection_error" and info.value.__cause__ is None
    assert sleeps == pytest.approx(LOW[:2])


@pytest.mark.parametrize(
    ("retry_after", "cap", "expected"),
    [
        ("1.5", 30.0, 1.5),  # honoured
        ("3600", 2.0, 2.0),  # capped at max_retry_after
        ("3600", 0.01, 0.15),  # the cap applies to the hint, never below the backoff
        ("0", 30.0, 0.15),  # a zero hint is the backoff
        ("soon", 30.0, 0.15),  # unparseable: ignored
    ],
)
def test_retry_after(monkeypatch: pytest.MonkeyPatch, retry_after: str, cap: float, expected: float) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: a)
    sleeps: list[float] = []
    answers = _answers((429, {"Retry-After": retry_after}), 200)
    with _client(answers, sleeps, max_retry_after=cap) as client:
        assert client.show_user()["id"] == 1
    assert sleeps == pytest.approx([expected])


def test_a_retried_5xx_makes_a_later_404_a_done_destroy() -> None:
    """A 502 may have been served: when the retry then finds the instance gone, the destroy counts as done."""
    with _client(_answers(502, 404), []) as client:
        assert client.destroy_instance(7) == {"success": True}


def test_a_retried_429_does_not() -> None:
    """A 429 was refused unseen, so a 404 after it means the instance never existed."""
    with _client(_answers(429, 404), []) as client, pytest.raises(VastNotFoundError):
        client.destroy_instance(7)
