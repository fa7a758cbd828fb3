"""How long does `vibeml mcp` (stdio) take to start, as an assistant sees it, cold?

Each run spawns a fresh `python -m vibeml mcp` with this checkout's `src` first on PYTHONPATH and talks
to it with the `mcp` package's own stdio client (what Claude Desktop, Cursor and the like do):
initialize → tools/list → list_jobs (needs the service and its job store) → estimate_training_cost
(needs the estimator). Times are from the spawn to each answer.

"Cold" here: a new process and a new, empty VIBEML_HOME each run (no job store, no settings, no cache
that VibeML keeps). Not dropped: the OS page cache (one unrecorded run first, so every recorded run
sees the same) and Python's bytecode caches (`__pycache__`, as after any install). `--same-home` keeps
one VIBEML_HOME for every run instead (what VibeML caches there is then warm, as on a second start).

Run: `.venv/bin/python bench/mcp_startup.py [--runs 5] [--out bench/results/mcp_startup.txt]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "vibeml", "mcp"]
STEPS = ("initialize", "tools/list", "list_jobs", "estimate_training_cost")
ESTIMATE = {"query": {"model": "Qwen/Qwen2.5-0.5B", "gpu": "L4", "max_steps": 50}}


def server_env(home: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "VIBEML_HOME": home, "HF_HUB_OFFLINE": "1"}


def check(result: Any, step: str) -> None:
    if result.is_error:
        raise SystemExit(f"{step} failed: {result.content}")


async def once(env: dict[str, str], stderr_path: Path) -> tuple[dict[str, float], int]:
    """One cold start: seconds from the spawn to each answer, and how many tools were listed."""
    params = StdioServerParameters(command=COMMAND[0], args=COMMAND[1:], env=env)
    at: dict[str, float] = {}
    with open(stderr_path, "w", encoding="utf-8") as errlog:
        t0 = time.perf_counter()
        async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w) as session:
            await session.initialize()
            at["initialize"] = time.perf_counter() - t0
            tools = (await session.list_tools()).tools
            at["tools/list"] = time.perf_counter() - t0
            check(await session.call_tool("list_jobs", {}), "list_jobs")
            at["list_jobs"] = time.perf_counter() - t0
            check(await session.call_tool("estimate_training_cost", ESTIMATE), "estimate_training_cost")
            at["estimate_training_cost"] = time.perf_counter() - t0
    return at, len(tools)


def run_once(home: str | None) -> tuple[dict[str, float], int]:
    """One start in ``home``, or in a new empty VIBEML_HOME when None."""
    with tempfile.TemporaryDirectory(prefix="vibeml-bench-") as tmp:
        log = Path(tmp) / "server-stderr.log"
        try:
            return asyncio.run(once(server_env(home or tmp), log))
        except BaseException:
            if log.exists():
                sys.stderr.write(log.read_text(encoding="utf-8", errors="replace")[-4000:])
            raise


def which_vibeml() -> str:
    with tempfile.TemporaryDirectory() as home:
        res = subprocess.run(
            [sys.executable, "-c", "import vibeml; print(vibeml.__file__)"],
            env=server_env(home),
            capture_output=True,
            text=True,
            check=True,
        )
    return res.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="recorded cold starts (median over them; default 5)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mcp_startup.txt")
    ap.add_argument("--same-home", action="store_true", help="one VIBEML_HOME for all runs (warm VibeML caches)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    shared = tempfile.TemporaryDirectory(prefix="vibeml-bench-home-") if args.same_home else None
    home = shared.name if shared else None
    run_once(home)  # unrecorded: the page cache (and with --same-home VibeML's caches) as every run sees them
    runs = []
    for i in range(args.runs):
        at, n_tools = run_once(home)
        runs.append(at)
        print(f"run {i + 1}: " + "  ".join(f"{s} {at[s] * 1000:.0f} ms" for s in STEPS), file=sys.stderr)

    lines = [
        f"command: PYTHONPATH={ROOT / 'src'} {shlex.join(COMMAND)}  (stdio, the `mcp` package's client)",
        f"vibeml imported from: {which_vibeml()}",
        (
            "warm VIBEML_HOME = a new process per run, one VIBEML_HOME for all (filled by an unrecorded run first)"
            if shared
            else "cold = a new process and a new empty VIBEML_HOME per run; the OS page cache (one unrecorded"
            " run\n  first) and __pycache__ bytecode are not dropped"
        ),
        f"tools listed: {n_tools}   runs: {args.runs}   load average: {os.getloadavg()[0]:.2f}   "
        f"cores: {os.cpu_count()}",
        "ms from spawn to the answer of:  " + "  ".join(f"{s:>22}" for s in STEPS),
    ]
    for i, at in enumerate(runs, 1):
        lines.append(f"  run {i:<27}  " + "  ".join(f"{at[s] * 1000:>22.0f}" for s in STEPS))
    med = {s: statistics.median(at[s] for at in runs) for s in STEPS}
    lines.append(f"  {'median':<31}  " + "  ".join(f"{med[s] * 1000:>22.0f}" for s in STEPS))
    if shared:
        shared.cleanup()
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(args.out, ROOT)
    cmd = f".venv/bin/python bench/mcp_startup.py --runs {args.runs} --out {rel}" + " --same-home" * args.same_home
    args.out.write_text(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  {cmd}\n{text}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
