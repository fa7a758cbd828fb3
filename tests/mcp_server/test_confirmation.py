"""Confirmation before money, through FastMCP's in-memory client against the fake Vast.ai over real HTTP.

A paid ``launch_training`` starts only on the person's explicit yes: asked through elicitation (in place on
handshake-era connections, as an ``InputRequiredResult`` on MCP 2026-07-28), or carried by the single-use,
expiring, plan-bound token of a dry run. Every test counts the create requests the fake received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult
from fastmcp.exceptions import ToolError

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import FakeProgramVast, assert_nothing_billing, make_service
from vibeml.client import VibeML
from vibeml.mcp.confirm import Confirmer
from vibeml.mcp.server import create_server
from vibeml.testing.fake_vast import FakeVast

fake = support.fake
vast_env = support.vast_env

MODEL = "Qwen/Qwen2.5-0.5B"  # a known architecture: planning works offline; fake_program never loads it
PAID = {"model": MODEL, "dataset": "org/data", "backend": "vast", "max_cost": 5.0, "max_steps": 5}
MODES = ["auto", "legacy"]  # MCP 2026-07-28 (the client's default) and a handshake-era connection


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


Handler = Callable[..., Any]


def _call(
    svc: VibeML,
    calls: list[tuple[str, dict[str, Any]]],
    *,
    handler: Handler | None = None,
    mode: str = "auto",
    confirmer: Confirmer | None = None,
) -> list[Any]:
    """Run tool calls in order on one server and one client; each answer, or the ToolError it raised."""

    async def go() -> list[Any]:
        out: list[Any] = []
        server = create_server(lambda: svc, confirmer=confirmer)
        async with Client(server, elicitation_handler=handler, mode=mode) as client:  # type: ignore[arg-type]
            for tool, args in calls:
                try:
                    out.append((await client.call_tool(tool, args)).structured_content)
                except ToolError as exc:
                    out.append(exc)
        return out

    return asyncio.run(go())


def _settle(svc: VibeML, fake: FakeVast, job_id: str) -> None:
    """Stop what a test launched and check nothing is left billing."""
    svc.stop(job_id)
    deadline = time.monotonic() + 30
    while fake.instance_ids() and time.monotonic() < deadline:
        svc.get_status(job_id)
        time.sleep(0.1)
    assert_nothing_billing(fake)


def _service(fake: FakeVast) -> VibeML:
    svc, _ = make_service(fake, backend_cls=FakeProgramVast)
    return svc


@pytest.mark.parametrize("mode", MODES)
def test_a_paid_launch_asks_and_a_yes_launches_once(vast_env: FakeVast, mode: str) -> None:
    asked: list[str] = []

    async def yes(message: str, response_type: Any, params: Any, context: Any) -> dict[str, bool]:
        asked.append(message)
        assert vast_env.count("create") == 0  # asked before anything is rented
        return {"confirm": True}

    svc = _service(vast_env)
    [result] = _call(svc, [("launch_training", PAID)], handler=yes, mode=mode)
    assert not isinstance(result, Exception), result
    assert result["dry_run"] is False and result["job"]["status"] == "provisioning"
    assert vast_env.count("create") == 1
    [message] = asked
    choice = result["job"]["request"]
    assert MODEL in message and "$5.00" in message and "on-demand" in message and "Expected cost" in message
    assert "at most $" in message and choice["max_cost"] == 5.0
    assert support.SECRET_KEY not in message
    _settle(svc, vast_env, result["job"]["job_id"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", ["decline", "cancel", "no"])
def test_a_paid_launch_without_a_yes_creates_nothing(vast_env: FakeVast, mode: str, answer: str) -> None:
    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        return {"confirm": False} if answer == "no" else ElicitResult(action=answer)

    [err] = _call(_service(vast_env), [("launch_training", PAID)], handler=handler, mode=mode)
    assert isinstance(err, ToolError) and "ConfirmationError" in str(err)
    assert "nothing was launched" in str(err)
    assert vast_env.count("create") == 0 and vast_env.instance_ids() == []


@pytest.mark.parametrize("mode", MODES)
def test_without_elicitation_the_error_names_the_token_flow(vast_env: FakeVast, mode: str) -> None:
    [err] = _call(_service(vast_env), [("launch_training", PAID)], mode=mode)
    assert isinstance(err, ToolError)
    text = str(err)
    assert "ConfirmationError" in text and "nothing was launched" in text
    assert "dry_run=true" in text and "confirmation_token" in text
    assert vast_env.count("create") == 0


def test_a_dry_run_token_launches_once_and_a_replay_is_refused(vast_env: FakeVast) -> None:
    svc = _service(vast_env)
    server = create_server(lambda: svc)

    async def go() -> tuple[Any, Any, Any]:
        async with Client(server) as client:  # no elicitation: the token flow
            dry = (await client.call_tool("launch_training", {**PAID, "dry_run": True})).structured_content
            token = dry["confirmation_token"]
            first = (
                await client.call_tool("launch_training", {**PAID, "confirmation_token": token})
            ).structured_content
            with pytest.raises(ToolError) as replay:
                await client.call_tool("launch_training", {**PAID, "confirmation_token": token})
            return dry, first, replay.value

    dry, first, replay = asyncio.run(go())
    assert dry["dry_run"] is True and dry["job"] is None and dry["confirmation_token"]
    assert "Expected cost" in dry["confirmation"] and "Hard cap: $5.00" in dry["confirmation"]
    assert "confirmation_token" in dry["next_step"]
    assert first["job"]["status"] == "provisioning"
    assert "already used" in str(replay)
    assert vast_env.count("create") == 1
    _settle(svc, vast_env, first["job"]["job_id"])


def test_an_expired_token_is_refused(vast_env: FakeVast) -> None:
    clock = Clock()
    svc = _service(vast_env)
    confirmer = Confirmer(clock=clock, ttl_seconds=600)
    [dry] = _call(svc, [("launch_training", {**PAID, "dry_run": True})], confirmer=confirmer)
    clock.now += 601
    [err] = _call(
        svc, [("launch_training", {**PAID, "confirmation_token": dry["confirmation_token"]})], confirmer=confirmer
    )
    assert isinstance(err, ToolError) and "expired" in str(err)
    assert vast_env.count("create") == 0


@pytest.mark.parametrize(
    "change",
    [{"max_cost": 6.0}, {"max_steps": 6}, {"dataset": "org/other"}, {"use_spot": True}],
    ids=["cap", "steps", "dataset", "market"],
)
def test_a_token_for_another_plan_is_refused(vast_env: FakeVast, change: dict[str, Any]) -> None:
    confirmer = Confirmer()
    svc = _service(vast_env)
    [dry] = _call(svc, [("launch_training", {**PAID, "dry_run": True})], confirmer=confirmer)
    args = {**PAID, **change, "confirmation_token": dry["confirmation_token"]}
    [err] = _call(svc, [("launch_training", args)], confirmer=confirmer)
    assert isinstance(err, ToolError) and "different plan" in str(err)
    assert vast_env.count("create") == 0


def test_a_token_from_another_server_or_forged_is_refused(vast_env: FakeVast) -> None:
    svc = _service(vast_env)
    [dry] = _call(svc, [("launch_training", {**PAID, "dry_run": True})])  # its own secret
    token = dry["confirmation_token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    errs = _call(
        svc,
        [
            ("launch_training", {**PAID, "confirmation_token": token}),
            ("launch_training", {**PAID, "confirmation_token": forged}),
            ("launch_training", {**PAID, "confirmation_token": "not-a-token"}),
        ],
    )
    assert all(isinstance(e, ToolError) and "ConfirmationError" in str(e) for e in errs), errs
    assert vast_env.count("create") == 0


def test_a_free_local_launch_needs_no_confirmation(vibeml_env: Path, demo_assets_dir: Path) -> None:
    import shutil

    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    svc = VibeML()

    async def never(*_: Any) -> Any:  # pragma: no cover - a free run must not ask
        raise AssertionError("a free local run asked for confirmation")

    dry, launched = _call(
        svc,
        [
            ("launch_training", {"demo": True, "max_cost": 1.0, "max_steps": 1, "dry_run": True}),
            ("launch_training", {"demo": True, "max_cost": 1.0, "max_steps": 1}),
        ],
        handler=never,
    )
    assert not isinstance(launched, Exception), launched
    assert dry["confirmation_token"] is None and dry["confirmation"] is None
    job_id = launched["job"]["job_id"]
    assert launched["job"]["backend"] == "local"
    svc.stop(job_id)


# ---------------------------------------------------------------------------------------- cleanup


def _leftovers(fake: FakeVast) -> tuple[VibeML, int, int]:
    """A service over the fake with one VibeML leftover (a recorded launch whose job is gone) and one
    machine that is not VibeML's, as (service, leftover id, other id)."""
    from vibeml.vast import VastAI

    svc, backend = make_service(fake)
    client = VastAI(api_key=support.SECRET_KEY, server_url=fake.url)
    offers = client.search_offers("num_gpus=1", limit=3, order="dph_total")
    label = backend.label_for("vml-deadbeef")
    backend.store().record_intent("vast", "vml-deadbeef", label, offers[0]["id"])
    dead = client.create_instance(offers[0]["id"], image="img", label=label)["new_contract"]
    other = client.create_instance(offers[1]["id"], image="img", label="my-own-notebook")["new_contract"]
    client.close()
    return svc, int(dead), int(other)


@pytest.mark.parametrize("mode", MODES)
def test_cleanup_asks_and_destroys_only_on_a_yes(vast_env: FakeVast, mode: str) -> None:
    svc, dead, other = _leftovers(vast_env)
    asked: list[str] = []

    async def no(message: str, *_: Any) -> Any:
        asked.append(message)
        return ElicitResult(action="decline")

    async def yes(message: str, *_: Any) -> Any:
        asked.append(message)
        assert vast_env.count("destroy") == 0
        return {"confirm": True}

    [refused] = _call(svc, [("cleanup_orphans", {})], handler=no, mode=mode)
    assert isinstance(refused, ToolError) and "nothing was destroyed" in str(refused)
    assert vast_env.count("destroy") == 0 and sorted(vast_env.instance_ids()) == sorted([dead, other])
    [done] = _call(svc, [("cleanup_orphans", {})], handler=yes, mode=mode)
    assert not isinstance(done, Exception), done
    assert [(o["id"], o["destroyed"]) for o in done["report"]["orphans"]] == [(str(dead), True)]
    assert vast_env.instance_ids() == [other]  # someone else's machine is never touched
    assert len(asked) == 2 and all(f"vast {dead}" in m and str(other) not in m for m in asked)
    again = _call(svc, [("cleanup_orphans", {})])  # nothing left of VibeML's: nothing to confirm
    assert again[0]["report"]["orphans"] == [] and "nothing" in again[0]["next_step"].lower()


def test_cleanup_without_elicitation_needs_the_token_of_exactly_that_set(vast_env: FakeVast) -> None:
    svc, dead, other = _leftovers(vast_env)
    confirmer = Confirmer()
    err, found = _call(svc, [("cleanup_orphans", {}), ("find_orphans", {})], confirmer=confirmer)
    assert isinstance(err, ToolError) and "find_orphans" in str(err) and "confirmation_token" in str(err)
    assert vast_env.count("destroy") == 0
    assert [o["id"] for o in found["report"]["orphans"]] == [str(dead)] and f"vast {dead}" in found["confirmation"]

    # Another leftover appears after the person said yes to one: the token does not cover it.
    from vibeml.vast import VastAI

    backend = svc.backends.get("vast")
    client = VastAI(api_key=support.SECRET_KEY, server_url=vast_env.url)
    offer = client.search_offers("num_gpus=1", limit=3, order="dph_total")[2]
    label = backend.label_for("vml-cafef00d")  # type: ignore[attr-defined]
    backend.store().record_intent("vast", "vml-cafef00d", label, offer["id"])  # type: ignore[attr-defined]
    late = client.create_instance(offer["id"], image="img", label=label)["new_contract"]
    client.close()
    token = found["confirmation_token"]
    [changed] = _call(svc, [("cleanup_orphans", {"confirmation_token": token})], confirmer=confirmer)
    assert isinstance(changed, ToolError) and "different plan" in str(changed)
    assert vast_env.count("destroy") == 0

    [found2] = _call(svc, [("find_orphans", {})], confirmer=confirmer)
    args = {"confirmation_token": found2["confirmation_token"]}
    [done] = _call(svc, [("cleanup_orphans", args)], confirmer=confirmer)
    assert not isinstance(done, Exception), done
    assert sorted(o["id"] for o in done["report"]["orphans"] if o["destroyed"]) == sorted([str(dead), str(late)])
    assert vast_env.instance_ids() == [other]
