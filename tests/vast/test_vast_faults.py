"""Retries and faults: 429 with Retry-After, 5xx, dropped connections, timeouts, ambiguous creates."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.vast.vast_helpers import SECRET_KEY, first_offer
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI, VastAmbiguousCreateError, VastAPIError, VastNotFoundError


class Sleeps:
    """Records the waits the client asks for (and waits for real, briefly)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(min(seconds, 0.002))


def _client(fake: FakeVast, **kwargs: Any) -> VastAI:
    options: dict[str, Any] = {"api_key": SECRET_KEY, "server_url": fake.url, "sleep": Sleeps(), "timeout": 5.0}
    options.update(kwargs)
    return VastAI(**options)


def _live(fake: FakeVast) -> list[int]:
    return fake.instance_ids()


# ------------------------------------------------------------------------------------ 429


def test_429_honours_retry_after(fake: FakeVast) -> None:
    sleeps = Sleeps()
    with _client(fake, sleep=sleeps) as client:
        fake.faults.rate_limit(2, retry_after=0.7, endpoint="search")
        assert client.search_offers("", limit=1)
    assert fake.count("search") == 3
    assert len(sleeps.calls) == 2 and all(0.7 <= s < 1.0 for s in sleeps.calls)


def test_retry_after_is_capped_and_backoff_grows(fake: FakeVast) -> None:
    sleeps = Sleeps()
    with _client(fake, sleep=sleeps, retry=4, max_retry_after=2.0) as client:
        fake.faults.rate_limit(1, retry_after=3600, endpoint="user")
        fake.faults.server_error(2, status=502, endpoint="user")
        assert client.show_user()["id"] == 1
    capped, first, second = sleeps.calls
    assert capped == 2.0
    assert 0.15 * 1.5 <= first <= 0.15 * 1.5 * 1.25 and 0.15 * 1.5**2 <= second <= 0.15 * 1.5**2 * 1.25


def test_429_exhausted_is_a_typed_retryable_error(fake: FakeVast) -> None:
    with _client(fake, retry=3) as client:
        fake.faults.rate_limit(5, retry_after=None)
        with pytest.raises(VastAPIError) as info:
            client.show_instances()
    err = info.value
    assert err.status == 429 and err.error == "rate_limit_exceeded" and err.retryable
    assert "too frequent" in str(err.msg)
    assert fake.count("show_instances") == 3


def test_retry_one_means_one_attempt(fake: FakeVast) -> None:
    with _client(fake, retry=1) as client:
        fake.faults.server_error(1, status=503)
        with pytest.raises(VastAPIError) as info:
            client.show_user()
    assert info.value.status == 503 and fake.count("user") == 1


# ------------------------------------------------------------------------------------ matrix


IDEMPOTENT_CALLS: dict[str, tuple[str, Callable[[VastAI, int], Any]]] = {
    "search_offers": ("search", lambda c, i: c.search_offers("num_gpus=1", limit=2)),
    "show_instance": ("show_instance", lambda c, i: c.show_instance(i)),
    "show_instances": ("show_instances", lambda c, i: c.show_instances()),
    "label_instance": ("manage", lambda c, i: c.label_instance(i, "relabelled")),
    "stop_instance": ("manage", lambda c, i: c.stop_instance(i)),
    "show_user": ("user", lambda c, i: c.show_user()),
    "show_ssh_keys": ("ssh_keys", lambda c, i: c.show_ssh_keys()),
    "logs": ("request_logs", lambda c, i: c.logs(i, poll_interval=0.005)),
    "destroy_instance": ("destroy", lambda c, i: c.destroy_instance(i)),
}

FAULTS: dict[str, Callable[[FakeVast, str], None]] = {
    "429": lambda f, e: f.faults.rate_limit(2, retry_after=0.01, endpoint=e),
    "502": lambda f, e: f.faults.server_error(1, status=502, endpoint=e),
    "503": lambda f, e: f.faults.server_error(2, status=503, endpoint=e),
    "504": lambda f, e: f.faults.server_error(1, status=504, endpoint=e),
    "drop": lambda f, e: f.faults.drop(2, endpoint=e),
    "drop_response": lambda f, e: f.faults.drop_response(1, endpoint=e),
    "timeout": lambda f, e: f.faults.slow(0.4, n=1, endpoint=e),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call", sorted(IDEMPOTENT_CALLS))
def test_fault_matrix_idempotent_calls_recover(make_fake: Callable[..., FakeVast], fault: str, call: str) -> None:
    fake = make_fake(n_offers=40)
    endpoint, run = IDEMPOTENT_CALLS[call]
    with _client(fake, timeout=0.2) as client:
        iid = client.create_instance(first_offer(client)["id"], image="img", onstart_cmd="echo ok")["new_contract"]
        fake.wait_for_status(iid, "exited")
        FAULTS[fault](fake, endpoint)
        result = run(client, iid)
    assert result is not None
    assert fake.count(endpoint) >= 2  # the fault was met and the call retried


def test_500_is_not_retried(fake: FakeVast) -> None:
    with _client(fake) as client:
        fake.faults.server_error(1, status=500, endpoint="user")
        with pytest.raises(VastAPIError) as info:
            client.show_user()
    assert info.value.status == 500 and not info.value.retryable and fake.count("user") == 1
    assert "status.vast.ai" in str(info.value.recovery_suggestion)


def test_persistent_timeouts_end_in_a_clear_error(fake: FakeVast) -> None:
    with _client(fake, timeout=0.1, retry=2) as client:
        fake.faults.slow(0.3, n=None, endpoint="user")
        with pytest.raises(VastAPIError) as info:
            client.show_user()
    assert info.value.error == "timeout" and info.value.status is None and info.value.retryable
    assert fake.count("user") == 2


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with VastAI(api_key=SECRET_KEY, server_url=f"http://127.0.0.1:{port}", sleep=sleeps, retry=3) as client:
        with pytest.raises(VastAPIError) as info:
            client.show_user()
    assert info.value.error == "connection_error" and len(sleeps.calls) == 2
    assert SECRET_KEY not in str(info.value)


def test_destroy_whose_response_was_lost_counts_as_done(fake: FakeVast) -> None:
    with _client(fake) as client:
        iid = client.create_instance(first_offer(client)["id"], image="img")["new_contract"]
        fake.faults.drop_response(1, endpoint="destroy")
        assert client.destroy_instance(iid) == {"success": True}
    assert fake.count("destroy") == 2 and _live(fake) == []


# ------------------------------------------------------------------------------------ ambiguous create


def test_create_whose_response_is_dropped_rents_exactly_one(fake: FakeVast) -> None:
    with _client(fake) as client:
        offer = first_offer(client)
        fake.faults.drop_response(1, endpoint="create")
        result = client.create_instance(offer["id"], image="img", label="job-a")
    assert result["recovered"] is True and result["label"] == "job-a"
    assert _live(fake) == [result["new_contract"]]
    assert fake.count("create") == 1  # found by label: never sent twice


def test_create_dropped_before_landing_is_retried_once(fake: FakeVast) -> None:
    with _client(fake) as client:
        fake.faults.drop(1, endpoint="create")
        result = client.create_instance(first_offer(client)["id"], image="img", label="mine")
    assert "recovered" not in result and _live(fake) == [result["new_contract"]]
    assert fake.count("create") == 2 and fake.count("show_instances") == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_5xx_is_ambiguous_and_safe(fake: FakeVast, status: int) -> None:
    with _client(fake) as client:
        fake.faults.server_error(1, status=status, endpoint="create")
        result = client.create_instance(first_offer(client)["id"], image="img", label="job-5xx")
    assert _live(fake) == [result["new_contract"]] and fake.count("create") == 2


def test_create_429_is_simply_retried(fake: FakeVast) -> None:
    with _client(fake) as client:
        fake.faults.rate_limit(2, retry_after=0.01, endpoint="create")
        result = client.create_instance(first_offer(client)["id"], image="img")
    assert _live(fake) == [result["new_contract"]] and fake.count("create") == 3
    assert fake.count("show_instances") == 0


def test_create_timeout_that_lands_late_rents_exactly_one(fake: FakeVast) -> None:
    """The first request sleeps server-side past the client's timeout, then lands after the retry."""
    with _client(fake, timeout=0.15) as client:
        fake.faults.slow(0.5, n=1, endpoint="create")
        result = client.create_instance(first_offer(client)["id"], image="img", label="job-late")
        time.sleep(0.6)  # let the slow first request finish on the server
    assert _live(fake) == [result["new_contract"]]
    assert fake.count("create") == 2


def test_create_timing_out_twice_is_found_by_polling(fake: FakeVast) -> None:
    with _client(fake, timeout=0.1, create_lookup_grace=3.0) as client:
        fake.faults.slow(0.35, n=2, endpoint="create")
        result = client.create_instance(first_offer(client)["id"], image="img", label="job-slow")
        time.sleep(0.5)
    assert result["recovered"] is True
    assert _live(fake) == [result["new_contract"]]


def test_unlabelled_create_that_fails_ambiguously_is_never_retried(fake: FakeVast) -> None:
    """No label (the SDK invents none): nothing to look it up by, so no blind retry that could rent two."""
    with _client(fake, retry=3) as client:
        fake.faults.drop_response(1, endpoint="create")
        with pytest.raises(VastAmbiguousCreateError) as info:
            client.create_instance(first_offer(client)["id"], image="img")
    assert info.value.label is None and "label" in str(info.value.recovery_suggestion)
    assert fake.count("create") == 1 and len(_live(fake)) == 1  # it landed; the caller was told it may have


def test_create_lost_with_no_way_to_check_is_a_clear_error(fake: FakeVast) -> None:
    with _client(fake, retry=1, create_lookup_grace=0.05) as client:
        fake.faults.drop(1, endpoint="create")
        with pytest.raises(VastAmbiguousCreateError) as info:
            client.create_instance(first_offer(client)["id"], image="img", label="lost")
    err = info.value
    assert err.label == "lost" and "lost" in str(err.recovery_suggestion) and _live(fake) == []
    assert fake.count("create") == 1


def test_create_when_lookup_fails_too(fake: FakeVast) -> None:
    with _client(fake, retry=2) as client:
        offer = first_offer(client)
        fake.faults.drop_response(1, endpoint="create")
        fake.faults.server_error(10, status=503, endpoint="show_instances")
        with pytest.raises(VastAmbiguousCreateError) as info:
            client.create_instance(offer["id"], image="img", label="landed")
    assert "may exist" in info.value.message and info.value.label == "landed"
    assert fake.count("create") == 1  # never retried blindly
    assert len(_live(fake)) == 1  # it did land: the caller must reconcile by label


def test_create_on_a_taken_offer_after_ambiguity(fake: FakeVast) -> None:
    with _client(fake, create_lookup_grace=0.05) as client:
        offer = first_offer(client)
        other = VastAI(api_key=SECRET_KEY, server_url=fake.url)
        fake.faults.drop(1, endpoint="create")
        # Someone else rents the offer between our two attempts.
        original = fake.faults.take

        def take_and_steal(kind: str, endpoint: str) -> Any:
            rule = original(kind, endpoint)
            if kind == "drop" and endpoint == "create" and rule is not None:
                other.create_instance(offer["id"], image="theirs", label="theirs")
            return rule

        fake.faults.take = take_and_steal  # type: ignore[method-assign]
        try:
            with pytest.raises(VastNotFoundError) as info:
                client.create_instance(offer["id"], image="img", label="ours")
        finally:
            fake.faults.take = original  # type: ignore[method-assign]
            other.close()
    assert info.value.error == "no_such_ask"
    assert [fake.instance(i)["label"] for i in _live(fake)] == ["theirs"]
