"""The `make demo` job, timed: a fresh VIBEML_HOME (demo assets built too), then the whole local fine-tune.

Run: `.venv/bin/python bench/demo.py` (writes bench/results/demo.txt).
Issue 2's bar: ≤ 120 s of wall time on 2 cores after install, and the loss falls by ≥ 30%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VIBEML_HOME": home, "HF_HUB_OFFLINE": "1"}
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-m", "vibeml", "launch", "--demo", "--follow", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            print(res.stdout[-2000:], res.stderr[-2000:])
            return 1
        jobs = json.loads(
            subprocess.run(
                [sys.executable, "-m", "vibeml", "jobs", "--json"], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    p = jobs[0]["progress"]
    drop = 1 - p["loss"] / p["first_loss"]
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    text = (
        f"command: {sys.executable} -m vibeml launch --demo --follow  (fresh VIBEML_HOME; assets built)\n"
        f"machine: {cores} cores, load average at the end {load:.2f}\n"
        f"wall: {wall:.1f} s (budget 120 s) -> {'OK' if wall <= 120 else 'OVER'}\n"
        f"training: {p['step']} steps in {p['elapsed_seconds']:.1f} s\n"
        f"loss: {p['first_loss']:.4f} -> {p['loss']:.4f} ({drop:.0%} lower; bar 30%) -> "
        f"{'OK' if drop >= 0.3 else 'TOO SMALL'}"
    )
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.txt").write_text(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  python bench/demo.py\n{text}\n", encoding="utf-8"
    )
    return 0 if wall <= 120 and drop >= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
