from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibeml.exceptions import (
    BudgetExceededError,
    CloudProviderError,
    ConfigurationError,
    DatasetError,
    VibeMLError,
    retry_with_backoff,
)


def test_error_carries_context_and_suggestion() -> None:
    exc = DatasetError("no rows", {"path": "x.jsonl"})
    assert exc.message == "no rows"
    assert exc.context == {"path": "x.jsonl"}
    assert exc.recovery_suggestion  # the class default
    assert exc.to_dict()["error"] == "DatasetError"
    assert isinstance(exc, VibeMLError)


def test_budget_error_has_both_figures() -> None:
    exc = BudgetExceededError("too dear", estimated_cost=7.123456, max_cost=5)
    assert exc.context["estimated_cost"] == 7.1235
    assert exc.context["max_cost"] == 5
    assert exc.estimated_cost == 7.123456


def test_secret_like_context_is_masked() -> None:
    exc = ConfigurationError("bad", {"api_key": "sk-verysecret", "hf_token": "hf_abc", "model": "m"})
    assert exc.context == {"api_key": "***", "hf_token": "***", "model": "m"}
    assert "verysecret" not in repr(exc)


def test_retry_sync_retries_only_retryable_and_reraises_last() -> None:
    delays: list[float] = []
    calls = {"n": 0}
    errors = [CloudProviderError(f"busy {i}", retryable=True) for i in range(3)]

    @retry_with_backoff(max_attempts=3, base_delay=1, max_delay=1.5, jitter=0, sleep=delays.append)
    def flaky() -> None:
        calls["n"] += 1
        raise errors[calls["n"] - 1]

    with pytest.raises(CloudProviderError) as info:
        flaky()
    assert info.value is errors[2]  # the last error, as it was
    assert calls["n"] == 3
    assert delays == [1.0, 1.5]  # backoff 1, 2 → capped at 1.5


def test_retry_does_not_retry_non_retryable() -> None:
    calls = {"n": 0}

    @retry_with_backoff(max_attempts=5, sleep=lambda s: None)
    def bad() -> None:
        calls["n"] += 1
        raise ConfigurationError("no")

    with pytest.raises(ConfigurationError):
        bad()
    assert calls["n"] == 1


def test_retry_succeeds_after_transient() -> None:
    calls = {"n": 0}

    @retry_with_backoff(max_attempts=4, base_delay=0.01, sleep=lambda s: None)
    def sometimes() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("reset")
        return "ok"

    assert sometimes() == "ok"
    assert calls["n"] == 3


def test_retry_async_with_jitter_cap_and_retry_after() -> None:
    delays: list[float] = []

    async def fake_sleep(s: float) -> None:
        delays.append(s)

    class Limited(CloudProviderError):
        pass

    calls = {"n": 0}

    @retry_with_backoff(max_attempts=4, base_delay=0.5, max_delay=2.0, jitter=0.5, sleep=fake_sleep)
    async def op() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            exc = Limited("slow down", retryable=True)
            exc.retry_after = 1.75  # type: ignore[attr-defined]
            raise exc
        if calls["n"] < 4:
            raise TimeoutError("t")
        return 7

    assert asyncio.run(op()) == 7
    assert delays[0] == pytest.approx(1.75)  # honours retry_after
    assert all(0 <= d <= 2.0 for d in delays)  # jitter never exceeds the cap


def test_retry_on_types() -> None:
    calls = {"n": 0}

    @retry_with_backoff(max_attempts=2, retry_on=(KeyError,), sleep=lambda s: None)
    def op() -> None:
        calls["n"] += 1
        raise KeyError("k")

    with pytest.raises(KeyError):
        op()
    assert calls["n"] == 2


def test_on_retry_sees_each_error_attempt_and_delay_and_no_wait_follows_the_last() -> None:
    seen: list[tuple[str, int, float]] = []
    slept: list[float] = []

    @retry_with_backoff(
        max_attempts=4,
        base_delay=1.0,
        backoff=2.0,
        max_delay=3.0,
        jitter=0,
        sleep=slept.append,
        on_retry=lambda exc, attempt, delay: seen.append((str(exc), attempt, delay)),
    )
    def op() -> None:
        raise ConnectionError(f"down {len(slept) + 1}")

    with pytest.raises(ConnectionError, match="down 4"):
        op()
    assert seen == [("down 1", 1, 1.0), ("down 2", 2, 2.0), ("down 3", 3, 3.0)]  # 4.0 capped at max_delay
    assert slept == [1.0, 2.0, 3.0]


def test_on_retry_can_give_up_by_raising() -> None:
    calls = {"n": 0}
    slept: list[float] = []

    class Cancelled(Exception):
        pass

    def give_up(exc: BaseException, attempt: int, delay: float) -> None:
        if attempt == 2:
            raise Cancelled

    @retry_with_backoff(max_attempts=5, jitter=0, sleep=slept.append, on_retry=give_up)
    def op() -> None:
        calls["n"] += 1
        raise TimeoutError("slow")

    with pytest.raises(Cancelled) as info:
        op()
    assert calls["n"] == 2 and len(slept) == 1
    assert isinstance(info.value.__context__, TimeoutError)  # the error that was not retried stays visible


def test_async_on_retry_may_be_a_coroutine() -> None:
    seen: list[int] = []

    async def note(exc: BaseException, attempt: int, delay: float) -> None:
        seen.append(attempt)

    async def no_wait(_s: float) -> None:
        return None

    calls = {"n": 0}

    @retry_with_backoff(max_attempts=3, sleep=no_wait, on_retry=note)
    async def op() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("c")
        return "ok"

    assert asyncio.run(op()) == "ok" and seen == [1, 2]


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(0.0, 10.0),
    factor=st.floats(1.0, 3.0),
    cap=st.floats(0.0, 60.0),
    jitter=st.floats(0.0, 1.0),
    attempts=st.integers(1, 8),
)
def test_delays_follow_the_documented_schedule(
    base: float, factor: float, cap: float, jitter: float, attempts: int
) -> None:
    slept: list[float] = []

    @retry_with_backoff(
        max_attempts=attempts, base_delay=base, backoff=factor, max_delay=cap, jitter=jitter, sleep=slept.append
    )
    def op() -> None:
        raise ConnectionError("c")

    with pytest.raises(ConnectionError):
        op()
    assert len(slept) == attempts - 1
    for n, delay in enumerate(slept, start=1):
        d = min(cap, base * factor ** (n - 1))
        assert 0.0 <= delay <= cap
        assert d * (1 - jitter) - 1e-9 <= delay <= min(cap, d * (1 + jitter)) + 1e-9
