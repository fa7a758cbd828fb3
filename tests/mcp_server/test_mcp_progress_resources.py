"""Progress of a followed launch, job logs and events as resources, and the fine_tune_safely prompt, through
FastMCP's in-memory client (the real protocol)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from vibeml.mcp.server import create_server


async def _wait_terminal(client: Client[Any], job_id: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        status = (await client.call_tool("get_job_status", {"job_id": job_id})).structured_content
        assert status is not None
        if status["status"] in {"completed", "failed", "stopped"} or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.5)


@pytest.mark.needs_train
@pytest.mark.slow
def test_wait_reports_increasing_progress_then_resources_read_the_finished_job(
    vibeml_env: Path, demo_assets_dir: Path
) -> None:
    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def go() -> tuple[dict[str, Any], list[Any], str, dict[str, Any]]:
        async with Client(create_server(), progress_handler=on_progress) as client:
            res = await client.call_tool(
                "launch_training", {"demo": True, "max_cost": 1, "max_steps": 40, "wait": True}
            )
            out = res.structured_content
            assert out is not None
            job_id = out["job"]["job_id"]
            templates = await client.list_resource_templates()
            log = await client.read_resource(f"vibeml://jobs/{job_id}/log")
            events = await client.read_resource(f"vibeml://jobs/{job_id}/events")
            return out, templates, log[0].text, json.loads(events[0].text)  # type: ignore[union-attr]

    out, templates, log_text, events = asyncio.run(go())
    assert out["job"]["status"] == "completed", out
    assert out["next_step"].startswith("Done")
    steps = [step for step, _, _ in seen]
    assert len([s for s in steps if s > 0]) >= 2, seen
    assert steps == sorted(steps) and len(set(steps)) == len(steps), seen
    assert all(t == 40 for p, t, _ in seen if p > 0), seen
    last_msg = seen[-1][2] or ""
    assert last_msg.startswith(f"step {int(steps[-1])}/40") and "loss" in last_msg and "cost $" in last_msg
    uris = {t.uriTemplate for t in templates}
    assert uris == {"vibeml://jobs/{job_id}/log", "vibeml://jobs/{job_id}/events"}
    assert log_text.strip() and len(log_text.splitlines()) <= 200
    assert events["job_id"] == out["job"]["job_id"] and events["status"] == "completed"
    assert events["progress"]["step"] == 40
    assert any(e.get("kind") == "done" or e.get("event") == "done" for e in events["trainer_events"]), events


@pytest.mark.needs_train
@pytest.mark.slow
def test_cancelling_a_followed_launch_stops_the_job(vibeml_env: Path, demo_assets_dir: Path) -> None:
    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if progress >= 1:
            started.set()

    async def go() -> dict[str, Any]:
        async with Client(create_server(), progress_handler=on_progress) as client:
            call = asyncio.create_task(
                client.call_tool("launch_training", {"demo": True, "max_cost": 1, "max_steps": 5000, "wait": True})
            )
            await asyncio.wait_for(started.wait(), 180)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            [job] = (await client.call_tool("list_jobs", {})).structured_content["result"]  # type: ignore[index]
            return await _wait_terminal(client, job["job_id"])

    status = asyncio.run(go())
    assert status["status"] == "stopped", status
    assert (status["progress"] or {}).get("step", 0) < 5000


def test_resources_give_an_actionable_error_for_an_unknown_job(vibeml_env: Path) -> None:
    async def go(uri: str) -> str:
        async with Client(create_server()) as client:
            with pytest.raises(MCPError) as info:
                await client.read_resource(uri)
            return str(info.value)

    for uri in ("vibeml://jobs/vml-nope/log", "vibeml://jobs/vml-nope/events"):
        text = asyncio.run(go(uri))
        assert "no job 'vml-nope'" in text and "Traceback" not in text, text
        assert "What to do:" in text or "Context:" in text, text


def test_fine_tune_safely_prompt_renders_its_arguments(vibeml_env: Path) -> None:
    async def go() -> tuple[list[Any], str]:
        async with Client(create_server()) as client:
            prompts = await client.list_prompts()
            got = await client.get_prompt(
                "fine_tune_safely", {"model": "Qwen/Qwen2.5-0.5B", "dataset": "my/tickets", "max_cost": "4.5"}
            )
            return prompts, got.messages[0].content.text  # type: ignore[union-attr]

    prompts, text = asyncio.run(go())
    [prompt] = prompts
    assert prompt.name == "fine_tune_safely" and {a.name for a in prompt.arguments or []} == {
        "model",
        "dataset",
        "max_cost",
    }
    assert "'Qwen/Qwen2.5-0.5B'" in text and "'my/tickets'" in text and "$4.5" in text
    order = [text.index(w) for w in ("Estimate", "Plan", "Confirm", "Launch", "Follow")]
    assert order == sorted(order)
    assert "dry_run=true" in text and "confirmation_token" in text and "wait=true" in text
