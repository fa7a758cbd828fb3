"""How long does `vibeml mcp` take to start and list its tools over stdio? (issue 5: ≤ 1 s)

Measures, with the `mcp` package's own stdio client, from spawning `python -m vibeml mcp` to having the
tool list (initialize + tools/list), and to the answer of a first tool call (list_workflows), which
needs the real FastMCP server loaded behind the front:

* warm: the usual case, the handshake cache filled by an earlier start of the same install;
* cold: the first start after an install or upgrade (an empty VIBEML_HOME each run).

Run: `.venv/bin/python bench/mcp_startup.py` (writes bench/results/mcp_startup.txt).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

WARM_RUNS = 9
COLD_RUNS = 3
ROOT = Path(__file__).resolve().parent.parent


async def once(env: dict[str, str]) -> tuple[float, float, int]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "vibeml", "mcp"], env=env)
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (r, w), ClientSession(r, w) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            listed = time.perf_counter() - t0
            result = await session.call_tool("list_workflows", {})
            assert not result.is_error, result.content
            return listed, time.perf_counter() - t0, len(tools)


def _line(name: str, xs: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(xs) * 1000:.0f} ms  min {min(xs) * 1000:.0f} ms  "
        f"max {max(xs) * 1000:.0f} ms  (n={len(xs)})"
    )


def main() -> int:
    base = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cold = []
    for _ in range(COLD_RUNS):
        with tempfile.TemporaryDirectory() as home:
            cold.append(asyncio.run(once({**base, "VIBEML_HOME": home})))
    with tempfile.TemporaryDirectory() as home:
        env = {**base, "VIBEML_HOME": home}
        asyncio.run(once(env))  # fills the cache, as any first start does
        warm = [asyncio.run(once(env)) for _ in range(WARM_RUNS)]
    med = statistics.median(t for t, _, _ in warm)
    text = "\n".join(
        [
            f"command: {sys.executable} -m vibeml mcp  (spawn -> initialize -> tools/list, then one tools/call)",
            f"tools listed: {warm[0][2]}   load average: {os.getloadavg()[0]:.2f}   cores: {os.cpu_count()}",
            _line("warm  tools listed     ", [t for t, _, _ in warm]),
            _line("warm  first call done  ", [c for _, c, _ in warm]),
            _line("cold  tools listed     ", [t for t, _, _ in cold]),
            _line("cold  first call done  ", [c for _, c, _ in cold]),
            f"budget: tools listed (warm) <= 1000 ms -> {'OK' if med <= 1.0 else 'OVER BUDGET'}",
        ]
    )
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mcp_startup.txt").write_text(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  .venv/bin/python bench/mcp_startup.py\n{text}\n", encoding="utf-8"
    )
    return 0 if med <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
