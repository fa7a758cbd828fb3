"""How fast does `vibeml --help` start, and does the CLI's start-up path stay free of heavy imports?

Run: `.venv/bin/python bench/cli_startup.py` (writes bench/results/cli_startup.txt).
Budget (issue 2): `vibeml --help` ≤ 0.25 s; torch, transformers, datasets and sky never imported.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
HEAVY = ("torch", "transformers", "datasets", "sky", "trl", "peft")
ROOT = Path(__file__).resolve().parent.parent


def _vibeml() -> list[str]:
    exe = Path(sys.executable).parent / "vibeml"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("vibeml")
    return [found] if found else [sys.executable, "-m", "vibeml"]


def time_command(argv: list[str], runs: int = RUNS) -> list[float]:
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def heavy_modules(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return res.stdout.split()


def main() -> int:
    cmd = [*_vibeml(), "--help"]
    times = time_command(cmd)
    med = statistics.median(times)
    heavy = heavy_modules("import vibeml.cli.main")
    heavy_api = heavy_modules("import vibeml, vibeml.client")
    lines = [
        f"command: {' '.join(cmd)}",
        f"runs: {RUNS}  median: {med * 1000:.0f} ms  min: {min(times) * 1000:.0f} ms  max: {max(times) * 1000:.0f} ms",
        f"budget: 250 ms  -> {'OK' if med <= 0.25 else 'OVER BUDGET'}",
        f"heavy modules imported by vibeml.cli.main: {heavy or 'none'}",
        f"heavy modules imported by vibeml + vibeml.client: {heavy_api or 'none'}",
    ]
    text = "\n".join(lines)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "cli_startup.txt").write_text(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  python bench/cli_startup.py\n{text}\n", encoding="utf-8"
    )
    return 0 if med <= 0.25 and not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
