"""The fake Vast.ai marketplace: a seeded, realistic set of offers and the server-side search engine.

Used by :mod:`vibeml.testing.fake_vast` and by benchmarks (``generate_offers(10_000)``). The GPU mix
and price bands follow public late-2026 Vast.ai prices (see ``/shared/FACTS.md``); they are test data
for a simulated provider, not VibeML's price catalogue.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GPU_MIX",
    "QueryRejected",
    "filter_offers",
    "generate_offers",
    "matches",
    "price_offer",
    "search",
    "sort_offers",
]


@dataclass(frozen=True)
class _Gpu:
    name: str
    ram_mb: int
    compute_cap: int
    tflops: float  # dense bf16/fp16 TFLOP/s, used for total_flops and dlperf
    price_lo: float  # on-demand $/GPU-hour band on Vast
    price_hi: float
    weight: int
    datacenter_share: float
    min_cuda: float = 11.8


GPU_MIX: tuple[_Gpu, ...] = (
    _Gpu("RTX 4090", 24564, 890, 165.0, 0.28, 0.60, 30, 0.15),
    _Gpu("RTX 3090", 24576, 860, 71.0, 0.13, 0.30, 16, 0.05),
    _Gpu("RTX 5090", 32607, 1200, 209.0, 0.55, 0.95, 6, 0.15, 12.8),
    _Gpu("RTX A6000", 49140, 860, 155.0, 0.38, 0.65, 7, 0.30),
    _Gpu("L40S", 46068, 890, 362.0, 0.55, 0.95, 6, 0.70),
    _Gpu("A100 PCIE", 40960, 800, 312.0, 0.55, 0.95, 4, 0.80),
    _Gpu("A100 SXM4", 81920, 800, 312.0, 0.90, 1.50, 8, 0.90),
    _Gpu("H100 SXM", 81559, 900, 989.0, 1.75, 2.45, 10, 0.95, 12.0),
    _Gpu("H100 PCIE", 81559, 900, 756.0, 1.50, 2.10, 4, 0.90, 12.0),
    _Gpu("H200", 143771, 900, 989.0, 2.40, 3.40, 3, 1.00, 12.2),
    _Gpu("L4", 23034, 890, 121.0, 0.25, 0.45, 3, 0.60),
    _Gpu("Tesla T4", 15360, 750, 65.0, 0.10, 0.22, 3, 0.50),
    _Gpu("A10", 23028, 860, 125.0, 0.25, 0.45, 2, 0.60),
)

_CUDA_DRIVERS: tuple[tuple[float, str], ...] = (
    (11.8, "520.61.05"),
    (12.0, "525.147.05"),
    (12.2, "535.183.01"),
    (12.4, "550.54.14"),
    (12.6, "560.35.03"),
    (12.8, "570.124.06"),
    (12.9, "575.57.08"),
    (13.0, "580.95.05"),
)
_PLACES = (
    ("Texas, US", 8),
    ("California, US", 6),
    ("Oregon, US", 3),
    ("Virginia, US", 3),
    ("Utah, US", 2),
    ("Quebec, CA", 3),
    ("Ontario, CA", 2),
    ("Germany, DE", 3),
    ("Netherlands, NL", 2),
    ("Sweden, SE", 2),
    ("Norway, NO", 1),
    ("Finland, FI", 1),
    ("Poland, PL", 2),
    ("Spain, ES", 1),
    ("Czechia, CZ", 1),
    ("Japan, JP", 2),
    ("Taiwan, TW", 2),
    ("South Korea, KR", 1),
    ("Australia, AU", 1),
    ("Brazil, BR", 1),
)
_COUNTS = ((1, 45), (2, 25), (4, 18), (8, 12))

#: Keys of a search body that are not filters.
_CONTROL_KEYS = frozenset({"order", "type", "limit", "allocated_storage", "disable_bundling", "select_cols"})


class QueryRejected(ValueError):
    """A search body the server cannot use (answered 400 ``invalid_args``)."""


def _weighted(rng: random.Random, items: Iterable[tuple[Any, int]]) -> Any:
    pairs = list(items)
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs], k=1)[0]


def generate_offers(n: int = 300, seed: int = 0, first_id: int = 5_000_000) -> list[dict[str, Any]]:
    """Generate ``n`` realistic offers, the same for the same ``seed``.

    Prices are consistent: ``dph_base`` is per-GPU price × ``num_gpus``; ``dph_total`` is filled in
    at search time as ``dph_base + storage_cost × allocated_storage / 720``; ``min_bid`` is 35–65 % of
    ``dph_base``. Memory is in MB, ``storage_cost`` in $/GB/month, ``duration`` in seconds.
    """
    rng = random.Random(seed)
    gpus = [(g, g.weight) for g in GPU_MIX]
    offers: list[dict[str, Any]] = []
    for i in range(n):
        gpu: _Gpu = _weighted(rng, gpus)
        num = _weighted(rng, _COUNTS if gpu.ram_mb >= 40000 else _COUNTS[:3])
        datacenter = rng.random() < gpu.datacenter_share
        cudas = [c for c in _CUDA_DRIVERS if c[0] >= gpu.min_cuda]
        cuda, driver = _weighted(rng, ((c, 1 + k) for k, c in enumerate(cudas)))
        per_gpu = rng.uniform(gpu.price_lo, gpu.price_hi) * (1.08 if datacenter else 1.0)
        dph_base = round(per_gpu * num, 4)
        reliability = round(1.0 - 10 ** rng.uniform(-4.0, -1.0) * (0.5 if datacenter else 1.0), 5)
        verified = datacenter or rng.random() < 0.85
        rented = rng.random() < 0.08
        efficiency = rng.uniform(0.78, 1.0)
        offers.append(
            {
                "id": first_id + i * 11 + rng.randint(0, 9),
                "ask_contract_id": first_id + i * 11,
                "machine_id": 20_000 + i,
                "host_id": 100 + i // 3,
                "num_gpus": num,
                "gpu_name": gpu.name,
                "gpu_ram": gpu.ram_mb,
                "gpu_total_ram": gpu.ram_mb * num,
                "gpu_frac": 1.0,
                "gpu_arch": "nvidia",
                "compute_cap": gpu.compute_cap,
                "cuda_max_good": cuda,
                "driver_version": driver,
                "cpu_arch": "amd64",
                "cpu_cores": num * rng.choice((8, 16, 24, 32)),
                "cpu_cores_effective": float(num * rng.choice((4, 6, 8, 12, 16))),
                "cpu_ram": num * rng.choice((32, 48, 64, 128, 256)) * 1000 + rng.randint(0, 999),
                "disk_space": float(rng.choice((40, 80, 120, 250, 500, 1000, 2000))),
                "disk_bw": round(rng.uniform(800, 6000), 1),
                "inet_up": round(rng.uniform(80, 8000), 1),
                "inet_down": round(rng.uniform(200, 9000), 1),
                "dph_base": dph_base,
                "min_bid": round(dph_base * rng.uniform(0.35, 0.65), 4),
                "storage_cost": round(rng.uniform(0.05, 0.30), 3),
                "inet_up_cost": round(rng.uniform(0.0, 0.02), 4),
                "inet_down_cost": round(rng.uniform(0.0, 0.02), 4),
                "reliability": reliability,
                "reliability2": reliability,
                "dlperf": round(gpu.tflops * num * efficiency / 10.0, 2),
                "total_flops": round(gpu.tflops * num * efficiency, 2),
                "pci_gen": float(rng.choice((3, 4, 4, 5))),
                "pcie_bw": round(rng.uniform(10, 55), 1),
                "gpu_mem_bw": round(rng.uniform(700, 3300), 1),
                "verification": "verified" if verified else "unverified",
                "verified": verified,
                "external": rng.random() < 0.04,
                "geolocation": _weighted(rng, _PLACES),
                "rentable": not rented,
                "rented": rented,
                "hosting_type": 1 if datacenter else 0,
                "datacenter": datacenter,
                "static_ip": datacenter or rng.random() < 0.3,
                "direct_port_count": rng.choice((0, 10, 20, 100)),
                "duration": round(rng.uniform(2.0, 180.0) * 86400.0, 1),
                "has_avx": 1,
            }
        )
    return offers


def price_offer(offer: Mapping[str, Any], storage_gb: float, type_: str = "on-demand") -> dict[str, Any]:
    """A copy of ``offer`` with ``dph_total`` and the derived per-dollar fields for this search."""
    row = dict(offer)
    gpu_rate = float(row["dph_base"])
    if type_ == "bid":
        gpu_rate = float(row["min_bid"])
    elif type_ == "reserved":
        gpu_rate = round(gpu_rate * 0.75, 4)
    storage = float(row.get("storage_cost") or 0.0) * storage_gb / 720.0
    total = round(gpu_rate + storage, 6)
    row["dph_total"] = total
    row["storage_total_cost"] = round(storage, 6)
    row["is_bid"] = type_ == "bid"
    row["dlperf_per_dphtotal"] = round(row["dlperf"] / total, 4) if total > 0 else 0.0
    row["flops_per_dphtotal"] = round(row["total_flops"] / total, 4) if total > 0 else 0.0
    row["score"] = round(row["dlperf_per_dphtotal"] * float(row["reliability"]), 4)
    return row


def _coerce(actual: Any, expected: Any) -> Any:
    """Coerce a query value to the type of the offer's field, as the real server does."""
    if expected is None:
        return None
    if isinstance(actual, bool):
        if isinstance(expected, bool):
            return expected
        text = str(expected).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise QueryRejected(f"cannot compare a boolean with {expected!r}")
    if isinstance(actual, (int, float)):
        try:
            value = float(expected)
        except (TypeError, ValueError):
            raise QueryRejected(f"cannot compare a number with {expected!r}") from None
        if math.isnan(value):
            raise QueryRejected("NaN is not a value")
        return value
    return expected if isinstance(expected, str) else str(expected)


def _equal(field: str, actual: Any, expected: Any) -> bool:
    if field == "geolocation" and isinstance(actual, str) and isinstance(expected, str):
        return actual == expected or actual.rsplit(", ", 1)[-1] == expected
    return bool(actual == expected)


def _compare(field: str, actual: Any, op: str, expected: Any) -> bool:
    if op in ("in", "notin"):
        values = expected if isinstance(expected, list) else [expected]
        found = any(_equal(field, actual, _coerce(actual, v)) for v in values)
        return found if op == "in" else not found
    if op not in ("eq", "neq", "gt", "gte", "lt", "lte"):
        raise QueryRejected(f"unknown operator {op!r}")
    value = _coerce(actual, expected)
    if op == "eq":
        return _equal(field, actual, value)
    if op == "neq":
        return not _equal(field, actual, value)
    if actual is None or value is None:
        return False
    try:
        if op == "gt":
            return bool(actual > value)
        if op == "gte":
            return bool(actual >= value)
        if op == "lt":
            return bool(actual < value)
        return bool(actual <= value)
    except TypeError:
        raise QueryRejected(f"cannot order {actual!r} and {value!r}") from None


def matches(offer: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Whether ``offer`` satisfies every filter in ``query`` (fields it lacks are ignored)."""
    for field, conditions in query.items():
        if field in _CONTROL_KEYS or field not in offer:
            continue
        if not isinstance(conditions, Mapping):
            raise QueryRejected(f"filter for {field!r} must be an object like {{'eq': value}}")
        actual = offer[field]
        for op, expected in conditions.items():
            if not _compare(field, actual, op, expected):
                return False
    return True


def sort_offers(rows: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
    """Stable multi-key sort by ``[[field, "asc"|"desc"], ...]``; missing values sort last."""
    if not order:
        return rows
    if not isinstance(order, list) or not all(isinstance(o, list) and len(o) == 2 for o in order):
        raise QueryRejected("order must be a list of [field, 'asc'|'desc'] pairs")
    for field, direction in reversed(order):
        if direction not in ("asc", "desc"):
            raise QueryRejected(f"order direction must be asc or desc, got {direction!r}")
        present = [r for r in rows if isinstance(r.get(field), (int, float, str))]
        missing = [r for r in rows if not isinstance(r.get(field), (int, float, str))]
        key = operator.itemgetter(field)
        try:
            present.sort(key=key, reverse=direction == "desc")
        except TypeError:  # mixed types: compare as text
            present.sort(key=lambda r: str(key(r)), reverse=direction == "desc")
        rows = present + missing
    return rows


def filter_offers(offers: Iterable[Mapping[str, Any]], query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Price every offer for the query's storage and type, then keep the matching ones."""
    storage = query.get("allocated_storage", 5.0)
    try:
        storage_gb = float(storage)
    except (TypeError, ValueError):
        raise QueryRejected("allocated_storage must be a number") from None
    type_ = query.get("type", "on-demand")
    if type_ == "interruptible":
        type_ = "bid"
    if type_ not in ("on-demand", "bid", "reserved"):
        raise QueryRejected(f"unknown type {type_!r}")
    return [row for row in (price_offer(o, storage_gb, type_) for o in offers) if matches(row, query)]


def search(
    offers: Iterable[Mapping[str, Any]], query: Mapping[str, Any], default_limit: int = 64
) -> list[dict[str, Any]]:
    """What ``POST /api/v0/bundles/`` answers for ``query``: filtered, ordered, limited offers."""
    rows = sort_offers(filter_offers(offers, query), query.get("order", [["score", "desc"]]))
    limit = query.get("limit", default_limit)
    try:
        limit_n = int(limit)
    except (TypeError, ValueError):
        raise QueryRejected("limit must be an integer") from None
    return rows[: max(0, limit_n)]
