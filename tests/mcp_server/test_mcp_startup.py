"""What the MCP server loads to list its tools, and the service it makes once, on first need."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastmcp import Client

from vibeml.client import VibeML
from vibeml.mcp.server import _LazyService, create_server

# Not needed for the tool list: the service and what stands behind it, FastMCP's docstring parser, ML stacks.
LAZY = ("vibeml.client", "vibeml.backends.base", "vibeml.workflows.script", "griffe", "torch", "transformers", "sky")


def test_listing_the_tools_loads_neither_the_service_nor_heavy_modules(vibeml_env: Path) -> None:
    probe = f"""
import asyncio, json, sys
from fastmcp import Client
from vibeml.mcp.server import _LazyService, create_server

async def go():
    async with Client(create_server()) as client:
        listed = len(await client.list_tools())
        loaded = [m for m in {LAZY!r} if m in sys.modules]
        await client.call_tool("list_jobs", {{}})
        return listed, loaded, "vibeml.client" in sys.modules

print(json.dumps(asyncio.run(go())))
"""
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    listed, loaded, client_after_call = json.loads(res.stdout.strip().splitlines()[-1])
    assert listed >= 11
    assert loaded == []
    assert client_after_call  # the first call that needs the service brings it


def test_the_service_is_made_once_by_racing_threads(vibeml_env: Path) -> None:
    made: list[int] = []

    def factory() -> VibeML:
        made.append(threading.get_ident())
        time.sleep(0.2)  # wide open for a second thread to race in
        return VibeML()

    lazy = _LazyService(factory)
    start = threading.Barrier(8)
    got: list[VibeML] = []

    def worker() -> None:
        start.wait()
        got.append(lazy())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(made) == 1 and len(got) == 8 and all(s is got[0] for s in got)


def test_the_server_makes_its_service_on_the_first_call_and_keeps_it(vibeml_env: Path) -> None:
    made: list[int] = []

    def factory() -> VibeML:
        made.append(1)
        return VibeML()

    server = create_server(factory)

    async def go() -> list[Any]:
        async with Client(server) as client:
            await client.list_tools()
            listed_without_service = made == []
            calls = [client.call_tool("list_jobs", {}) for _ in range(4)]
            calls += [client.call_tool("get_spending", {}) for _ in range(4)]
            return [listed_without_service, *await asyncio.gather(*calls)]

    listed_without_service, *results = asyncio.run(go())
    assert listed_without_service
    assert len(results) == 8 and all(not r.is_error for r in results)
    assert len(made) == 1
    _, *again = asyncio.run(go())  # a new session on the same server reuses it
    assert all(not r.is_error for r in again)
    assert len(made) == 1


def test_tool_descriptions_are_the_docstrings_unparsed(vibeml_env: Path) -> None:
    async def go() -> dict[str, str]:
        async with Client(create_server()) as client:
            return {t.name: t.description or "" for t in await client.list_tools()}

    descriptions = asyncio.run(go())
    assert descriptions["list_workflows"] == "Training workflows (e.g. trl-lora, full)."
    assert descriptions["launch_training"].startswith("Fine-tune a model. Validates, estimates, refuses past max_cost")
    assert "\n" in descriptions["launch_training"] and "    " not in descriptions["launch_training"]  # dedented
