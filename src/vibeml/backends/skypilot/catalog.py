"""SkyPilot price catalogues ↔ VibeML's price table, offline and without importing SkyPilot.

SkyPilot does not ship its catalogues: it downloads ``<cloud>/vms.csv`` into
``$SKY_RUNTIME_DIR/.sky/catalogs/v8`` (``~`` when unset) on first use and refetches it when stale — unless
the file has no ``.meta/<cloud>/vms.csv.md5`` beside it, which SkyPilot reads as "edited by hand" and
never refetches. :func:`seed_sky_catalogs` writes VibeML's dated price table in that format, so an
offline or air-gapped machine can plan, export and price SkyPilot tasks. It never replaces a catalogue
SkyPilot fetched (unless forced), records what it wrote in ``.vibeml-seeded.json``, and
:func:`unseed_sky_catalogs` removes exactly those files (when unchanged), letting SkyPilot fetch the real
ones again.

The other direction (SkyPilot's cached catalogues → live quotes for the planner) is
:func:`vibeml.catalog.prices.read_sky_catalogs`.

Column sets follow SkyPilot 0.14.1's fetchers (``sky/catalog/data_fetchers``): every cloud reads
``InstanceType, AcceleratorName, AcceleratorCount, vCPUs, MemoryGiB, GpuInfo, Price, SpotPrice, Region``;
AWS, GCP and RunPod also ``AvailabilityZone``. GCP lists GPUs as their own rows (no instance type, the
GPU price) beside host-VM rows; its GPU price here is the whole quote and the host row costs 0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vibeml.catalog.gpus import resolve_gpu
from vibeml.catalog.prices import PriceQuote, PriceTable, load_price_table
from vibeml.safe_paths import atomic_write_bytes

__all__ = [
    "CATALOG_SCHEMA_VERSION",
    "SeedReport",
    "catalog_root",
    "render_vms_csv",
    "seed_sky_catalogs",
    "sky_accelerator_name",
    "unseed_sky_catalogs",
]

#: SkyPilot 0.14's catalogue schema directory (``sky.skylet.constants.CATALOG_SCHEMA_VERSION``).
CATALOG_SCHEMA_VERSION = "v8"
MARKER = ".vibeml-seeded.json"

_COMMON = [
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "GpuInfo",
    "Price",
    "SpotPrice",
    "Region",
]
_WITH_ZONE = frozenset({"aws", "gcp", "runpod"})
_NO_SPOT = frozenset({"lambda"})
#: Where SkyPilot's accelerator name differs from "the canonical name without spaces".
_SKY_NAME_OVERRIDES = {"A100-40GB": "A100"}
_GCP_ACCELERATOR_HOSTS = re.compile(r"^(a2|a3|a4|g2|g4)-[a-z0-9-]+$")
_SAFE_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def sky_accelerator_name(gpu: str) -> str:
    """SkyPilot's accelerator name for a GPU (any VibeML alias): ``"RTX 4090"`` → ``"RTX4090"``,
    ``"A100-40GB"`` → ``"A100"``, ``"H100"`` → ``"H100"``."""
    canonical = resolve_gpu(gpu).name
    return _SKY_NAME_OVERRIDES.get(canonical, canonical.replace(" ", ""))


def catalog_root(runtime_dir: str | Path | None = None) -> Path:
    """``<runtime_dir>/.sky/catalogs/v8`` (your home when ``runtime_dir`` is None), as SkyPilot 0.14 computes
    it from ``SKY_RUNTIME_DIR`` (``settings.skypilot.runtime_dir``)."""
    return Path(runtime_dir or Path.home()).expanduser() / ".sky" / "catalogs" / CATALOG_SCHEMA_VERSION


def _gpu_info(gpu: str, count: int) -> str:
    """SkyPilot's ``GpuInfo`` column: a Python-literal dict (``ast.literal_eval`` reads it)."""
    spec = resolve_gpu(gpu)
    mib = round(spec.memory_gib * 1024)
    name = sky_accelerator_name(gpu)
    return str(
        {
            "Gpus": [{"Name": name, "Manufacturer": "NVIDIA", "Count": count, "MemoryInfo": {"SizeInMiB": mib}}],
            "TotalGpuMemoryInMiB": mib * count,
        }
    )


def _instances(quote: PriceQuote) -> list[tuple[str, int]]:
    """(instance type, GPU count) pairs: the table's ``a|b|c`` instances pair with ``1|4|8`` counts;
    otherwise one synthetic name per count (``2x_H100``)."""
    names = [n.strip() for n in quote.instance.split("|") if n.strip()]
    if len(names) == len(quote.gpu_counts) and all(_SAFE_INSTANCE.match(n) for n in names):
        return list(zip(names, quote.gpu_counts, strict=True))
    sky_name = sky_accelerator_name(quote.gpu)
    return [(f"{n}x_{sky_name}", n) for n in quote.gpu_counts]


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_vms_csv(cloud: str, quotes: Iterable[PriceQuote]) -> tuple[str, list[str]]:
    """One cloud's ``vms.csv`` text from quotes (on-demand and spot quotes of a GPU/region merge into
    one row). Returns the text and the instances skipped (with why)."""
    cloud = cloud.lower()
    rows: dict[tuple[str, str, int], dict[str, float | None]] = {}
    gpus: dict[tuple[str, str, int], str] = {}
    skipped: list[str] = []
    for q in quotes:
        if q.cloud != cloud:
            continue
        for instance, count in _instances(q):
            if cloud == "gcp" and not _GCP_ACCELERATOR_HOSTS.match(instance):
                skipped.append(f"gcp/{instance}: GPUs attached to general-purpose VMs need host VM specs")
                continue
            key = (instance, q.region, count)
            gpus[key] = q.gpu
            prices = rows.setdefault(key, {"Price": None, "SpotPrice": None})
            prices["SpotPrice" if q.spot else "Price"] = q.usd_per_gpu_hour * count
    columns = [*_COMMON, "AvailabilityZone"] if cloud in _WITH_ZONE else list(_COMMON)
    if cloud == "gcp":  # the order SkyPilot's GCP fetcher writes
        columns = [
            "InstanceType",
            "vCPUs",
            "MemoryGiB",
            "AcceleratorName",
            "AcceleratorCount",
            "GpuInfo",
            "Region",
            "AvailabilityZone",
            "Price",
            "SpotPrice",
        ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for (instance, region, count), prices in sorted(rows.items()):
        if prices["Price"] is None and prices["SpotPrice"] is None:
            continue
        spot = None if cloud in _NO_SPOT else prices["SpotPrice"]
        gpu = gpus[(instance, region, count)]
        zone = f"{region}-a" if cloud == "gcp" else (region if cloud == "runpod" else f"{region}a")
        row = {
            "InstanceType": instance,
            "AcceleratorName": sky_accelerator_name(gpu),
            "AcceleratorCount": count,
            "vCPUs": "",
            "MemoryGiB": "",
            "GpuInfo": _gpu_info(gpu, count),
            "Price": _money(prices["Price"]),
            "SpotPrice": _money(spot),
            "Region": region,
        }
        if "AvailabilityZone" in columns:
            row["AvailabilityZone"] = zone
        if cloud == "gcp":
            # The GPU row carries the price; the host VM row (no accelerator) costs nothing extra.
            writer.writerow({**row, "InstanceType": ""})
            writer.writerow(
                {
                    "InstanceType": instance,
                    "Region": region,
                    "AvailabilityZone": zone,
                    "Price": "0.0",
                    "SpotPrice": "0.0",
                }
            )
        else:
            writer.writerow(row)
    return out.getvalue(), list(dict.fromkeys(skipped))


class SeedReport(BaseModel):
    """What :func:`seed_sky_catalogs` did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str
    written: dict[str, str]
    kept: dict[str, str]
    skipped: list[str]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_marker(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def seed_sky_catalogs(
    root: str | Path | None = None,
    *,
    table: PriceTable | None = None,
    clouds: Iterable[str] | None = None,
    force: bool = False,
) -> SeedReport:
    """Write VibeML's price table as SkyPilot ``<cloud>/vms.csv`` catalogues (no ``.meta`` md5, so
    SkyPilot uses them as they are and never refetches them).

    Args:
        root: The catalogue directory (default :func:`catalog_root` of your home; the CLI passes the one
            of ``settings.skypilot.runtime_dir``).
        table: Prices to write (default: the bundled table, not live quotes).
        clouds: Only these clouds (default: every cloud in the table).
        force: Replace catalogues that exist and were not seeded by VibeML (e.g. fetched by SkyPilot).
    """
    base = Path(root) if root is not None else catalog_root()
    table = table or load_price_table()
    wanted = sorted({c.lower() for c in clouds} if clouds else set(table.clouds))
    seeded = _read_marker(base)
    written: dict[str, str] = {}
    kept: dict[str, str] = {}
    skipped: list[str] = []
    for cloud in wanted:
        if cloud not in table.clouds:
            skipped.append(f"{cloud}: no prices in the table")
            continue
        path = base / cloud / "vms.csv"
        rel = f"{cloud}/vms.csv"
        ours = rel in seeded and path.exists() and _sha256(path) == seeded[rel]
        if path.exists() and not ours and not force:
            kept[cloud] = "a catalogue is already there (fetched by SkyPilot or edited); use force to replace it"
            continue
        text, skip = render_vms_csv(cloud, table.quotes)
        skipped.extend(skip)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("utf-8"), mode=0o644)  # SkyPilot's own catalogues are 0644
        # A stale md5 would make SkyPilot treat the file as its own download and refetch it.
        (base / ".meta" / cloud / "vms.csv.md5").unlink(missing_ok=True)
        seeded[rel] = _sha256(path)
        written[cloud] = str(path)
    if written:
        base.mkdir(parents=True, exist_ok=True)
        (base / MARKER).write_text(json.dumps(seeded, indent=2, sort_keys=True), encoding="utf-8")
    return SeedReport(root=str(base), written=written, kept=kept, skipped=list(dict.fromkeys(skipped)))


def unseed_sky_catalogs(root: str | Path | None = None) -> list[str]:
    """Remove the catalogues VibeML seeded and nobody changed since; returns the removed paths.

    A seeded file edited since is left in place (it is someone's now) and forgotten.
    """
    base = Path(root) if root is not None else catalog_root()
    removed: list[str] = []
    for rel, digest in _read_marker(base).items():
        path = base / rel
        if path.exists() and _sha256(path) == digest:
            path.unlink()
            removed.append(str(path))
    (base / MARKER).unlink(missing_ok=True)
    return removed
