"""How long does `vibeml mcp` take to start and list its tools over stdio? (issue 5: ≤ 1 s)

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

RUNS = 7
ROOT = Path(__file__).resolve().parent.parent


async def once(env: dict[str, str]) -> tuple[float, int]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "vibeml", "mcp"], env=env)
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (r, w), ClientSession(r, w) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            return time.perf_counter() - t0, len(tools)


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VIBEML_HOME": home, "HF_HUB_OFFLINE": "1"}
        results = [asyncio.run(once(env)) for _ in range(RUNS)]
    times = [t for t, _ in results]
    med = statistics.median(times)
    text = (
        f"command: {sys.executable} -m vibeml mcp  (spawn + initialize + tools/list over stdio)\n"
        f"runs: {RUNS}  tools: {results[0][1]}  median: {med * 1000:.0f} ms  min: {min(times) * 1000:.0f} ms  "
        f"max: {max(times) * 1000:.0f} ms\nbudget: 1000 ms -> {'OK' if med <= 1.0 else 'OVER BUDGET'}"
    )
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mcp_startup.txt").write_text(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  python bench/mcp_startup.py\n{text}\n", encoding="utf-8"
    )
    return 0 if med <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
