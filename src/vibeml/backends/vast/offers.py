"""Choosing a Vast.ai offer for a job: the search filters and the ranking by total job cost.

Pure functions over offer dicts (what ``VastAI.search_offers`` returns), so the ranking can be tested
with tables and benchmarked (``bench/vast_rank.py``: 10,000 offers in well under 100 ms).

Ranking: the planner already chose the GPU type and count from live prices; among the offers for that
choice the cheapest *job* wins, not the cheapest hour. An offer's hours are the planner's estimate
scaled by how fast the machine is (its ``total_flops`` against the catalogue peak the estimate assumed,
clamped to 0.5–2x so one odd figure cannot dominate), and its cost is its price × those hours. For an
interruptible (bid) rental the price is our bid (``min_bid`` × a margin) plus storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vibeml.catalog.gpus import GPUS, normalize_gpu_name, try_resolve_gpu
from vibeml.vast.query import render_query

__all__ = [
    "RankedOffer",
    "gpu_name_variants",
    "offer_filters",
    "offer_query",
    "rank_offers",
    "resolve_offer_gpu",
]

#: How far an offer's measured compute may move the planner's hours (faster and slower).
_SPEED_CLAMP = (0.5, 2.0)

_GPU_CACHE: dict[str, str | None] = {}


def resolve_offer_gpu(gpu_name: str) -> str | None:
    """The canonical catalogue name of a Vast ``gpu_name`` (cached: offers repeat a few dozen names)."""
    if gpu_name not in _GPU_CACHE:
        spec = try_resolve_gpu(gpu_name)
        _GPU_CACHE[gpu_name] = spec.name if spec else None
    return _GPU_CACHE[gpu_name]


def gpu_name_variants(gpu: str) -> list[str]:
    """Every spelling of a catalogue GPU that a Vast offer may carry (for a ``gpu_name in [...]`` filter).

    Names the query language cannot write (underscores, commas) are left out; the ranking re-checks
    each offer's GPU through the catalogue anyway.
    """
    spec = GPUS.get(gpu) or try_resolve_gpu(gpu)
    if spec is None:
        return [gpu]
    names = []
    for name in (spec.name, *spec.aliases):
        if name and not any(c in name for c in '_,"[]') and name not in names and normalize_gpu_name(name):
            names.append(name)
    return names


def offer_filters(
    *,
    gpu: str | None,
    gpu_count: int,
    min_gpu_ram_gb: float | None,
    min_reliability: float,
    min_cuda: float,
    min_disk_gb: float | None,
) -> dict[str, dict[str, Any]]:
    """The search filters (wire form, memory in MB) for a job; defaults (verified, rentable…) are added
    by ``build_search_query``."""
    filters: dict[str, dict[str, Any]] = {
        "num_gpus": {"eq": str(int(gpu_count))},
        "reliability": {"gte": f"{min_reliability:g}"},
        "cuda_max_good": {"gte": f"{min_cuda:g}"},
        "rentable": {"eq": True},
    }
    if gpu:
        filters["gpu_name"] = {"in": gpu_name_variants(gpu)}
    if min_gpu_ram_gb:
        # Offers report gpu_ram in MiB (a 24 GiB card shows ~24564): GiB of need x 1024.
        filters["gpu_ram"] = {"gte": round(min_gpu_ram_gb * 1024.0, 1)}
    if min_disk_gb:
        filters["disk_space"] = {"gte": f"{math.ceil(min_disk_gb):d}"}
    return filters


def offer_query(filters: Mapping[str, Mapping[str, Any]]) -> str:
    """Filters as query-language text (what ``search_offers`` takes, and what a user can re-run)."""
    return render_query(filters)


@dataclass(frozen=True, slots=True)
class RankedOffer:
    """One offer priced for a job."""

    offer: Mapping[str, Any]
    hours: float
    price_per_hour: float
    bid: float | None
    total_cost: float

    @property
    def id(self) -> int:
        return int(self.offer["id"])


def rank_offers(
    offers: Iterable[Mapping[str, Any]],
    *,
    gpu: str | None,
    gpu_count: int,
    estimated_hours: float,
    min_gpu_ram_mb: float = 0.0,
    min_reliability: float = 0.0,
    min_cuda: float = 0.0,
    disk_gb: float = 0.0,
    spot: bool = False,
    bid_margin: float = 1.05,
    reference_tflops: float | None = None,
    max_cost: float | None = None,
    top: int | None = 20,
) -> list[RankedOffer]:
    """Rank offers for a job by expected total cost (cheapest first).

    Offers are re-checked client-side (GPU type through the catalogue, count, memory, reliability,
    CUDA, disk, rentable) so a loose server never hands us a machine that does not fit.

    Args:
        offers: Offer dicts; ``dph_total`` should be priced for ``disk_gb`` (search ``storage=disk_gb``).
        gpu: Canonical GPU the planner chose (``None``: any).
        gpu_count: GPUs per machine.
        estimated_hours: The planner's hours for the job on the catalogue GPU.
        min_gpu_ram_mb: Per-GPU memory the job needs (MB, as offers report it).
        min_reliability: Reliability floor (0–1).
        min_cuda: Lowest ``cuda_max_good`` the image works with.
        disk_gb: Disk the job rents (also prices bid storage).
        spot: Rank as interruptible rentals: price = bid + storage.
        bid_margin: Bid = ``min_bid`` × this (≥ 1: a little above the floor is outbid less often).
        reference_tflops: Total TFLOP/s the planner's hours assume (catalogue peak × count).
        max_cost: Drop offers whose expected cost exceeds this.
        top: How many to return (``None``: all).

    Returns:
        :class:`RankedOffer` list, cheapest total first (ties: more reliable, then lower id).
    """
    lo, hi = _SPEED_CLAMP
    hours0 = max(0.0, float(estimated_hours))
    rows: list[tuple[float, float, int, RankedOffer]] = []
    for o in offers:
        try:
            if o.get("num_gpus") != gpu_count or not o.get("rentable", True):
                continue
            if o.get("gpu_ram", 0) < min_gpu_ram_mb or (o.get("reliability") or 0.0) < min_reliability:
                continue
            if (o.get("cuda_max_good") or 0.0) < min_cuda or (o.get("disk_space") or 0.0) < disk_gb:
                continue
            if gpu is not None and resolve_offer_gpu(str(o.get("gpu_name") or "")) != gpu:
                continue
            if spot:
                min_bid = o.get("min_bid")
                if not isinstance(min_bid, (int, float)) or min_bid <= 0:
                    continue
                bid = round(max(0.001, float(min_bid) * bid_margin), 4)
                price = bid + float(o.get("storage_cost") or 0.0) * disk_gb / 720.0
            else:
                bid = None
                price = float(o["dph_total"])
            if not price > 0 or not math.isfinite(price):
                continue
            hours = hours0
            flops = o.get("total_flops")
            if reference_tflops and isinstance(flops, (int, float)) and flops > 0:
                hours = hours0 * min(hi, max(lo, reference_tflops / flops))
            cost = price * hours
        except (KeyError, TypeError, ValueError):
            continue  # a malformed offer is skipped, never fatal
        if max_cost is not None and cost > max_cost:
            continue
        rows.append((cost, -(o.get("reliability") or 0.0), int(o["id"]), RankedOffer(o, hours, price, bid, cost)))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    ranked = [r[3] for r in rows]
    return ranked if top is None else ranked[:top]
