"""`make demo` on a fresh clone, install included: what a newcomer waits for.

Run: `make bench-install` (or `python3 bench/fresh_demo.py [--runs N]`); writes bench/results/fresh_demo.txt.
Issue 11's goal: ≤ 75 s of wall time on 2 cores (it was 2 min 14 s with pip and ranges).

Each run clones this repository's HEAD into a temporary folder and runs `make demo` there with empty uv and pip
caches and a fresh VIBEML_HOME (so the demo assets are built too), as on a machine that never installed
VibeML. Packages still come from wherever this machine's installers are set up to take them (the registry; a
local wheel folder pip is configured with is honoured by uv too). The install and the demo are timed apart
from the stamp file `make` writes when the install ends.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 75.0


def one_run() -> dict[str, float | str]:
    with tempfile.TemporaryDirectory(prefix="vibeml-fresh-") as tmp:
        clone = Path(tmp) / "vibeml"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        env = {
            **os.environ,
            "UV_CACHE_DIR": f"{tmp}/uv-cache",
            "PIP_NO_CACHE_DIR": "1",
            "VIBEML_HOME": f"{tmp}/home",
            "NO_COLOR": "1",
        }
        t0 = time.time()
        res = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        wall = time.time() - t0
        if res.returncode != 0:
            print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
            raise SystemExit(f"make demo failed with exit code {res.returncode}")
        stamp = clone / ".venv" / ".vibeml-demo-installed"
        install = stamp.stat().st_mtime - t0
        out = res.stdout + res.stderr
        summary = re.search(r"Loss:\s*(\d+\.\d+)\s*\S+\s*(\d+\.\d+)", out)  # the summary: first -> last step
        losses = list(summary.groups()) if summary else re.findall(r"step\s+\d+/\d+\s+loss\s+(\d+\.\d+)", out)
        installer = "uv" if "with uv" in out else "pip"
        return {
            "wall": wall,
            "install": install,
            "demo": wall - install,
            "installer": installer,
            "loss": f"{losses[0]} -> {losses[-1]}" if losses else "?",
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("make") is None:
        raise SystemExit("make is not installed")
    runs = [one_run() for _ in range(args.runs)]
    walls = [float(r["wall"]) for r in runs]
    median = statistics.median(walls)
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  python3 bench/fresh_demo.py --runs {args.runs}  (make bench-install)",
        f"machine: {os.cpu_count()} cores, {sys.platform}; each run: git clone HEAD, empty uv/pip caches, "
        "fresh VIBEML_HOME, `make demo`",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"run {i}: wall {float(r['wall']):.1f} s = install {float(r['install']):.1f} s ({r['installer']})"
            f" + demo {float(r['demo']):.1f} s; loss {r['loss']}"
        )
    lines.append(f"median wall: {median:.1f} s (goal {GOAL_S:.0f} s) -> {'OK' if median <= GOAL_S else 'OVER'}")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fresh_demo.txt").write_text(text + "\n", encoding="utf-8")
    return 0 if median <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
