"""How fast does `vibeml estimate` answer, and does it stay free of heavy imports?

Run: `.venv/bin/python bench/estimate_speed.py` (writes bench/results/estimate_speed.txt).
Budget (issue 6): `vibeml estimate ...` answers in ≤ 0.5 s without importing torch.

Times the installed `vibeml` entry point when it has the `estimate` command; otherwise (before the CLI's
main app registers it) a `python -c` program that builds a Typer app, calls
`vibeml.cli.estimate.register(app)` and runs the same command line.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
HEAVY = ("torch", "transformers", "datasets", "sky", "trl", "peft")
ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "estimate",
    "--model",
    "meta-llama/Llama-3.1-8B",
    "--method",
    "lora",
    "--batch-size",
    "8",
    "--max-seq-length",
    "2048",
    "--gradient-checkpointing",
    "--lora-r",
    "16",
    "--gpu",
    "H100",
    "--max-steps",
    "1000",
    "--json",
]
FALLBACK = (
    "import sys, typer\n"
    "from vibeml.cli.estimate import register\n"
    "app = typer.Typer()\n"
    "register(app)\n"
    "app(sys.argv[1:])\n"
)


def _command() -> tuple[list[str], str]:
    exe = Path(sys.executable).parent / "vibeml"
    if exe.exists():
        probe = subprocess.run([str(exe), "estimate", "--help"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [str(exe), *ARGS], "entry point `vibeml`"
    return [sys.executable, "-c", FALLBACK, *ARGS], "python -c (register() on a local Typer app)"


def _time(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def _heavy_imports(argv_tail: list[str]) -> list[str]:
    code = (
        "import sys, typer\n"
        "from vibeml.cli.estimate import register\n"
        "app = typer.Typer()\n"
        "register(app)\n"
        "try:\n"
        f"    app({argv_tail!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(x for x in res.stderr.splitlines() if x.startswith("HEAVY="))
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def main() -> int:
    argv, how = _command()
    times = _time(argv, RUNS)
    baseline = _time([sys.executable, "-c", "pass"], 5)
    med = statistics.median(times)
    heavy = _heavy_imports(ARGS)
    lines = [
        f"command: vibeml {' '.join(ARGS)}",
        f"run as: {how}",
        f"runs: {RUNS}; median {med:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
        f"(bare interpreter start {statistics.median(baseline):.3f} s)",
        f"budget ≤ 0.5 s: {'met' if med <= 0.5 else 'NOT met'}",
        f"heavy modules imported: {', '.join(heavy) if heavy else 'none'}",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / "estimate_speed.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    return 0 if med <= 0.5 and not heavy else 1


if __name__ == "__main__":
    raise SystemExit(main())
