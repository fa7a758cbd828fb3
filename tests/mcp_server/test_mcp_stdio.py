"""`vibeml mcp` as a real stdio subprocess, driven by the `mcp` package's own client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

pytestmark = [pytest.mark.needs_train, pytest.mark.slow]


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def test_stdio_server_lists_estimates_and_trains_the_demo(
    vibeml_env: Path, demo_assets_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    errlog = open(tmp_path / "server-stderr.log", "w")
    params = StdioServerParameters(command=sys.executable, args=["-m", "vibeml", "mcp"], env=dict(os.environ))

    async def go() -> dict[str, Any]:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"launch_training", "estimate_training_cost", "get_job_status"} <= tools
            est = _data(
                await session.call_tool(
                    "estimate_training_cost", {"query": {"model": "Qwen/Qwen2.5-0.5B", "gpu": "L4", "max_steps": 50}}
                )
            )
            assert est["fits"] and est["expected_cost"] > 0
            launched = _data(await session.call_tool("launch_training", {"demo": True, "max_cost": 1, "max_steps": 12}))
            job_id = launched["job"]["job_id"]
            deadline = time.monotonic() + 180
            status: dict[str, Any] = {}
            while time.monotonic() < deadline:
                status = _data(await session.call_tool("get_job_status", {"job_id": job_id}))
                if status["status"] in ("completed", "failed", "stopped"):
                    break
                await asyncio.sleep(1)
            return status

    try:
        status = asyncio.run(go())
    finally:
        errlog.close()
    assert status["status"] == "completed", status.get("error")
    assert status["progress"]["step"] == 12
    assert Path(status["output_dir"], "adapter_config.json").exists()
