"""The table-built surface of ``VastAI``/``AsyncVastAI``: threads, masking, typed errors and result shapes.

The wire form of every method is checked against the official SDK in ``test_vast_conformance.py``; these tests
cover what that cannot: many threads (and tasks) on one client, secrets in ``explain``/``curl`` output, bad
arguments, and what the methods return for the protocol's answers.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.vast.vast_helpers import SECRET_KEY
from vibeml.exceptions import ValidationError, VibeMLError
from vibeml.testing.vast_recorder import RecordingVast
from vibeml.vast import AsyncVastAI, VastAI, VastNotFoundError
from vibeml.vast.endpoints import ENDPOINTS


def _mock(answers: dict[tuple[str, str], Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        if key not in answers:
            return httpx.Response(404, json={"success": False, "error": "not_found", "msg": "no route"})
        return httpx.Response(200, json=answers[key])

    return httpx.MockTransport(handler)


def test_table_methods_from_many_threads_send_their_own_requests() -> None:
    """16 threads share one client; every request carries its own thread's arguments (no shared state)."""
    with RecordingVast() as srv, VastAI(api_key=SECRET_KEY, server_url=srv.url) as vast:
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(10):
                    n = t * 100 + i
                    vast.prepay_instance(n, amount=n / 10)
                    vast.show_deposit(n)
                    vast.set_min_bid(n, price=0.01 * (i + 1))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        got = {(r.method, r.path, json.dumps(r.body, sort_keys=True)) for r in srv.take()}
    want = set()
    for t in range(16):
        for i in range(10):
            n = t * 100 + i
            want.add(("PUT", f"/api/v0/instances/prepay/{n}/", json.dumps({"amount": n / 10})))
            want.add(("GET", f"/api/v0/instances/balance/{n}/", "null"))
            body = {"client_id": "me", "price": 0.01 * (i + 1)}
            want.add(("PUT", f"/api/v0/machines/{n}/minbid/", json.dumps(body, sort_keys=True)))
    assert got == want


def test_async_table_methods_run_concurrently_on_one_client() -> None:
    with RecordingVast() as srv:

        async def main() -> list[Any]:
            async with AsyncVastAI(api_key=SECRET_KEY, server_url=srv.url) as vast:
                return await asyncio.gather(*(vast.show_deposit(n) for n in range(40)))

        results = asyncio.run(main())
        paths = sorted(r.path for r in srv.take())
    assert len(results) == 40 and all(r == {"success": True} for r in results)
    assert paths == sorted(f"/api/v0/instances/balance/{n}/" for n in range(40))


@pytest.mark.parametrize(
    ("call", "secret"),
    [
        (lambda v: v.create_env_var("HF_TOKEN", "hf_account_secret"), "hf_account_secret"),
        (lambda v: v.update_env_var("ANY_NAME", "s3cr3t-value"), "s3cr3t-value"),
        (lambda v: v.take_snapshot(7, repo="me/r", docker_login_pass="dockerpass1"), "dockerpass1"),
        (lambda v: v.create_subaccount("a@example.com", "a", "subpass123"), "subpass123"),
        (lambda v: v.tfa_activate(code="123456", secret="totpsecret9"), "totpsecret9"),
        (lambda v: v.tfa_login(backup_code="backup-code-77"), "backup-code-77"),
    ],
)
def test_explain_and_curl_never_show_the_key_or_secret_fields(
    call: Callable[[VastAI], Any], secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with RecordingVast() as srv:
        with VastAI(api_key=SECRET_KEY, server_url=srv.url, explain=True) as vast:
            call(vast)
            assert repr(vast).count("****") == 1
        explained = capsys.readouterr()
        with VastAI(api_key=SECRET_KEY, server_url=srv.url, curl=True, quiet=True) as vast:
            command = call(vast)
        assert srv.take()[0].authorized  # the explained one was sent; the curl one was not
        assert srv.take() == []
    text = explained.out + explained.err + str(command)
    assert "****" in explained.err and "$VAST_API_KEY" in str(command)
    assert SECRET_KEY not in text and secret not in explained.err


def test_wrong_arguments_are_typed_errors_before_anything_is_sent() -> None:
    with RecordingVast() as srv, VastAI(api_key=SECRET_KEY, server_url=srv.url) as vast:
        with pytest.raises(ValidationError) as missing:
            vast.prepay_instance(5)
        assert "amount" in str(missing.value) and missing.value.recovery_suggestion
        with pytest.raises(ValidationError):
            vast.update_instance(5, no_such_field=1)
        with pytest.raises(ValidationError) as date:
            vast.show_earnings(start_date="the 3rd of never")
        assert date.value.recovery_suggestion
        with pytest.raises(ValidationError):
            vast.copy("1:/a:/b", "2:/c")
        with pytest.raises(ValidationError):
            vast.create_instances([1, "two"], image="img")  # type: ignore[list-item]
        with pytest.raises(VibeMLError) as na:
            vast.self_test_machine(3)
        assert na.value.recovery_suggestion
        assert srv.take() == []


def test_results_take_the_official_shapes() -> None:
    answers = {
        ("GET", "/api/v0/machines"): {"machines": [{"id": 1}, {"id": 2}]},
        ("GET", "/api/v0/machines/3"): [{"id": 3, "hostname": "h"}],
        ("GET", "/api/v0/machines/4"): [],
        ("GET", "/api/v0/secrets/"): {"secrets": {"HF_TOKEN": "hf_x", "MODE": "a"}},
        ("GET", "/api/v0/auth/apikeys/"): {"apikeys": [{"id": 9}]},
        ("GET", "/api/v0/endptjobs/"): {"success": True, "results": [{"id": 1, "api_key": "endpoint-key"}]},
        ("GET", "/api/v0/instances/filters/"): {"filters": ["gpu_name"]},
        ("GET", "/api/v0/users/me/invoices"): {
            "invoices": [{"type": "charge", "amount": 1}, {"type": "payment", "amount": 2}],
            "current": {"charges": 3},
        },
    }
    with VastAI(api_key=SECRET_KEY, transport=_mock(answers)) as vast:
        assert vast.show_machines() == [{"id": 1}, {"id": 2}]
        assert vast.show_machine(3) == {"id": 3, "hostname": "h"}
        with pytest.raises(VastNotFoundError):
            vast.show_machine(4)
        assert vast.show_env_vars() == {"HF_TOKEN": "****", "MODE": "****"}
        assert vast.show_env_vars(show_values=True) == {"HF_TOKEN": "hf_x", "MODE": "a"}
        assert vast.show_api_keys() == [{"id": 9}]
        assert vast.show_endpoints() == [{"id": 1}]
        assert vast.show_instance_filters() == ["gpu_name"]
        charges = vast.show_invoices(only_charges=True)
        assert charges == {"invoices": [{"type": "charge", "amount": 1}], "current": {"charges": 3}}


def test_every_table_entry_names_its_path_parameters() -> None:
    for name, ep in ENDPOINTS.items():
        params = {p.name for p in ep.params}
        for part in ep.path.split("{")[1:]:
            assert part.split("}")[0] in params, name
