"""How fast can 10,000 Vast offers be ranked by estimated job cost?

Run: `.venv/bin/python bench/vast_rank.py` (writes bench/results/vast_rank.txt).
Budget (issue 3): ranking 10,000 offers ≤ 100 ms.

The offers come from the fake marketplace generator (`vibeml.testing.fake_vast_market`), priced for
the search's storage as the server would (`dph_total`), so the timed part is only what a client does
with a search answer: filter by memory and reliability, estimate hours from the offer's compute,
cost = `dph_total × hours`, keep the cheapest. The cost model is a stand-in until the planner
(estimate/planner.py) lands; swap `rank` for the planner's ranking then.
"""

from __future__ import annotations

import heapq
import statistics
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vibeml.testing.fake_vast_market import generate_offers, price_offer  # noqa: E402
from vibeml.vast.models import Offer  # noqa: E402

N_OFFERS = 10_000
RUNS = 25
BUDGET_MS = 100.0


def rank(
    offers: Iterable[Mapping[str, Any]],
    *,
    min_gpu_ram_mb: float,
    min_reliability: float,
    hours_on_reference: float,
    reference_tflops: float = 989.0,
    top: int = 20,
) -> list[tuple[float, float, Mapping[str, Any]]]:
    """The ``top`` cheapest offers for a job as ``(total $, hours, offer)``, cheapest first.

    Hours scale inversely with the offer's total compute (``total_flops``, TFLOP/s over all GPUs)
    relative to a reference machine; cost = ``dph_total × hours``.
    """
    work = hours_on_reference * reference_tflops
    candidates = []
    for o in offers:
        if o["gpu_ram"] < min_gpu_ram_mb or o["reliability"] < min_reliability:
            continue
        flops = o["total_flops"]
        if flops <= 0:
            continue
        hours = work / flops
        candidates.append((o["dph_total"] * hours, hours, o["id"], o))
    best = heapq.nsmallest(top, candidates, key=lambda c: (c[0], c[2]))
    return [(cost, hours, o) for cost, hours, _, o in best]


def main() -> int:
    t0 = time.perf_counter()
    offers = [price_offer(o, storage_gb=50.0) for o in generate_offers(N_OFFERS, seed=42)]
    gen_ms = (time.perf_counter() - t0) * 1000
    job = {"min_gpu_ram_mb": 24_000, "min_reliability": 0.98, "hours_on_reference": 2.0}
    rank(offers, **job)  # warm up
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        best = rank(offers, **job)
        times.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    typed = [Offer.model_validate(o) for o in offers]
    validate_ms = (time.perf_counter() - t) * 1000
    med = statistics.median(times)
    cost, hours, top = best[0]
    kept = sum(1 for o in offers if o["gpu_ram"] >= 24_000 and o["reliability"] >= 0.98)
    lines = [
        f"offers: {N_OFFERS:,} generated + priced in {gen_ms:.0f} ms (not timed); {kept:,} pass the filters",
        f"rank (filter gpu_ram>=24GB, reliability>=0.98; cost = dph_total x est. hours; top 20), {RUNS} runs:",
        f"  median: {med:.1f} ms  min: {min(times):.1f} ms  max: {max(times):.1f} ms",
        f"budget: {BUDGET_MS:.0f} ms  -> {'OK' if med <= BUDGET_MS else 'OVER BUDGET'}",
        f"best: offer {top['id']} {top['num_gpus']}x {top['gpu_name']} ${top['dph_total']:.4f}/h "
        f"x {hours:.2f} h = ${cost:.4f}",
        f"(for reference: pydantic Offer.model_validate of all {len(typed):,} offers: {validate_ms:.0f} ms)",
    ]
    text = "\n".join(lines)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "vast_rank.txt").write_text(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  python bench/vast_rank.py\n{text}\n", encoding="utf-8"
    )
    return 0 if med <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
