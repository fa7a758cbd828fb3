"""The API key never appears in output, logs, exceptions, reprs, ``explain`` or ``curl`` text."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable

import httpx
import pytest

from tests.vast.vast_helpers import SECRET_KEY, fast_sleep, first_offer
from vibeml.exceptions import VibeMLError
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI, VastAPIError


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert SECRET_KEY not in text
        assert SECRET_KEY[:12] not in text or "****" in text  # not even a long prefix in clear


def _error_texts(err: BaseException) -> list[str]:
    texts = [str(err), repr(err)]
    if isinstance(err, VibeMLError):
        texts.append(json.dumps(err.to_dict(), default=str))
        texts.append(str(err.recovery_suggestion))
    return texts


def test_explain_prints_requests_with_the_key_masked(
    make_client: Callable[..., VastAI],
    fake: FakeVast,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(explain=True, raw=False)
    offer = first_offer(client)
    iid = client.create_instance(
        offer["id"],
        image="img",
        env={"VAST_API_KEY": SECRET_KEY, "HF_TOKEN": "hf_secret_value", "PLAIN": "ok"},
        onstart_cmd=f"echo {SECRET_KEY}",
    )["new_contract"]
    fake.wait_for_status(iid, "exited")
    log_text = client.logs(iid)
    assert SECRET_KEY in log_text  # the data is the instance's own; only what is printed is masked
    client.show_user()
    client.show_instances()
    client.destroy_instance(iid)
    captured = capsys.readouterr()
    _assert_clean(captured.out, captured.err, caplog.text)
    assert "PUT " + fake.url + f"/api/v0/asks/{offer['id']}/" in captured.err
    assert "Authorization: Bearer ****" in captured.err
    assert '"PLAIN": "ok"' in captured.err and "hf_secret_value" not in captured.err
    assert "GET " + fake.url + "/api/v1/instances/?select_filters=" in captured.err


def test_curl_never_contains_the_key(make_client: Callable[..., VastAI], capsys: pytest.CaptureFixture[str]) -> None:
    client = make_client(curl=True)
    commands = [
        client.create_instance(1, image="img", env={"VAST_API_KEY": SECRET_KEY}, onstart_cmd=f"use {SECRET_KEY}"),
        client.show_user(),
        client.search_offers("num_gpus=1"),
        client.destroy_instance(3),
        client.attach_ssh(3, "ssh-ed25519 AAAA user@host"),
    ]
    captured = capsys.readouterr()
    _assert_clean(*map(str, commands), captured.out, captured.err)
    assert all("$VAST_API_KEY" in str(c) for c in commands)


def test_logs_and_exceptions_never_carry_the_key(fake: FakeVast, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with VastAI(api_key=SECRET_KEY, server_url=fake.url, sleep=fast_sleep, retry=2) as client:
        fake.faults.rate_limit(5, retry_after=0.01)
        with pytest.raises(VastAPIError) as limited:
            client.show_user()
        fake.faults.clear()
        fake.faults.drop(5)
        with pytest.raises(VastAPIError) as dropped:
            client.show_instances()
        fake.faults.clear()
        with pytest.raises(VastAPIError) as missing:
            client.show_instance(42)
    for err in (limited.value, dropped.value, missing.value):
        _assert_clean(*_error_texts(err))
    _assert_clean(caplog.text)
    assert "retrying" in caplog.text


def test_server_messages_echoing_the_key_are_masked(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        if "result" in request.url.path:  # the log URL is fetched without credentials
            assert "Authorization" not in request.headers
            return httpx.Response(200, text=f"log line api_key={SECRET_KEY}")
        assert request.headers["Authorization"] == f"Bearer {SECRET_KEY}"
        if request.url.path.endswith("/current"):
            return httpx.Response(401, json={"error": "auth_error", "msg": f"Invalid user key {SECRET_KEY}"})
        if "request_logs" in request.url.path:
            url = "https://s3.test/result?api_key=presigned-token-123"
            return httpx.Response(200, json={"success": True, "result_url": url})
        return httpx.Response(400, text=f"<html>bad key Bearer {SECRET_KEY}</html>")

    transport = httpx.MockTransport(handler)
    with VastAI(api_key=SECRET_KEY, server_url="https://vast.test", transport=transport, explain=True) as client:
        errors = []
        for call in (client.show_user, client.show_ssh_keys):
            with pytest.raises(VastAPIError) as info:
                call()
            errors.append(info.value)
        text = client.logs(5)
    for err in errors:
        _assert_clean(*_error_texts(err))
    assert text == f"log line api_key={SECRET_KEY}"  # data is returned untouched
    captured = capsys.readouterr()
    _assert_clean(caplog.text, captured.out, captured.err)
    assert "https://s3.test/result?api_key=****" in captured.err and "presigned-token" not in captured.err


def test_unauthenticated_log_fetch_sends_no_key(fake: FakeVast) -> None:
    with VastAI(api_key=SECRET_KEY, server_url=fake.url, sleep=fast_sleep) as client:
        iid = client.create_instance(first_offer(client)["id"], image="img", onstart_cmd="echo hi")["new_contract"]
        fake.wait_for_status(iid, "exited")
        client.logs(iid)
    assert {c.auth for c in fake.calls("logs_result")} == {"none"}
    assert {c.auth for c in fake.calls() if c.endpoint != "logs_result"} == {"bearer"}


def test_reprs_and_pickles_hide_the_key(fake: FakeVast) -> None:
    client = VastAI(api_key=SECRET_KEY, server_url=fake.url)
    try:
        _assert_clean(repr(client), str(client), repr(client._core), repr(vars(client)), repr(vars(client._core)))
        assert "****" in repr(client)
        with pytest.raises(Exception):  # noqa: B017 - a live client (with its pool) must not pickle its key out
            pickle.dumps(client)
    finally:
        client.close()
