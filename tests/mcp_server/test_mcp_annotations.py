"""Every MCP tool carries a title and annotations, and they say what the tool does (read-only, destructive,
idempotent, reaching clouds or the hub), as FastMCP's in-memory client lists them."""

from __future__ import annotations

import asyncio
from typing import Any

from fastmcp import Client

from vibeml.mcp.server import create_server

#: name → (readOnly, destructive, idempotent, openWorld). A new tool must be added here (or the test fails).
EXPECTED: dict[str, tuple[bool, bool, bool, bool]] = {
    "launch_training": (False, False, False, True),
    "stop_job": (False, True, True, True),
    "cleanup_orphans": (False, True, False, True),
    "find_orphans": (True, False, True, True),
    "estimate_training_cost": (True, False, True, True),
    "plan_training": (True, False, True, True),
    "recommend_gpu": (True, False, True, True),
    "search_gpu_offers": (True, False, True, True),
    "list_jobs": (True, False, True, True),
    "get_job_status": (True, False, True, True),
    "get_job_logs": (True, False, True, True),
    "generate": (True, False, True, True),
    "validate_model": (True, False, True, True),
    "validate_dataset": (True, False, True, True),
    "list_workflows": (True, False, True, False),
    "get_spending": (True, False, True, False),
}


def _tools() -> list[Any]:
    async def go() -> list[Any]:
        async with Client(create_server()) as client:
            return await client.list_tools()

    return asyncio.run(go())


def test_every_tool_is_annotated_as_the_table_says() -> None:
    tools = {t.name: t for t in _tools()}
    assert set(tools) == set(EXPECTED), "a tool was added or removed: annotate it and add it to EXPECTED"
    for name, tool in tools.items():
        a = tool.annotations
        assert a is not None, f"{name} has no annotations"
        got = (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert got == EXPECTED[name], (name, got)
        assert tool.title and a.title == tool.title and len(tool.title) >= 8, name


def test_only_launch_stop_and_cleanup_change_anything() -> None:
    writers = {t.name for t in _tools() if not t.annotations.read_only_hint}
    assert writers == {"launch_training", "stop_job", "cleanup_orphans"}


def test_following_a_launch_is_opt_in_and_leaves_its_annotations() -> None:
    [launch] = [t for t in _tools() if t.name == "launch_training"]
    wait = launch.inputSchema["properties"]["wait"]
    assert wait["type"] == "boolean" and wait["default"] is False
    assert "progress" in wait["description"] and "stops the job" in wait["description"]
    assert "wait" not in launch.inputSchema.get("required", [])
