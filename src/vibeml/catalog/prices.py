"""Prices: the dated, sourced table shipped in ``prices.csv`` and the seam for live prices.

The table is read once through :mod:`importlib.resources` (so it works from a wheel). Live prices — Vast
offers, SkyPilot's cached catalogue — are fetched by adapters elsewhere and passed in as
:class:`PriceQuote` objects; :meth:`PriceTable.with_live` lays them over the table (a live quote replaces
the table's quote for the same cloud, region, GPU and market).

Cloud facts that are not per-GPU (storage price, typical provisioning time, spot interruption rate) live
in :data:`CLOUDS`.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vibeml.catalog.gpus import resolve_gpu, try_resolve_gpu
from vibeml.exceptions import ConfigurationError

__all__ = [
    "CLOUDS",
    "CloudInfo",
    "PriceQuote",
    "PriceTable",
    "load_price_table",
    "parse_price_csv",
    "quotes_from_sky_catalog",
    "quotes_from_vast_offers",
    "read_sky_catalogs",
]


class CloudInfo(BaseModel):
    """Facts about one cloud that are not tied to a GPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    display_name: str
    storage_usd_per_gb_month: float = Field(ge=0, description="Block storage / volume price.")
    provisioning_minutes: float = Field(ge=0, description="Typical request-to-SSH time for a GPU box.")
    spot_interruptions_per_hour: float = Field(
        ge=0, description="Rough rate at which spot/interruptible capacity is reclaimed."
    )
    supports_spot: bool = True
    multi_node: bool = Field(
        True, description="A job may span several machines here (SkyPilot lists the clouds where it cannot)."
    )
    source: str = ""


#: Typical figures from the providers' public pages (late 2026); provisioning and interruption rates are
#: our own rough observations and only feed the setup-time and spot-risk terms.
CLOUDS: dict[str, CloudInfo] = {
    c.name: c
    for c in (
        CloudInfo(
            name="aws",
            display_name="AWS",
            storage_usd_per_gb_month=0.08,
            provisioning_minutes=4.0,
            spot_interruptions_per_hour=0.05,
            source="https://aws.amazon.com/ebs/pricing/ (gp3)",
        ),
        CloudInfo(
            name="gcp",
            display_name="Google Cloud",
            storage_usd_per_gb_month=0.10,
            provisioning_minutes=4.0,
            spot_interruptions_per_hour=0.06,
            source="https://cloud.google.com/compute/disks-image-pricing (pd-balanced)",
        ),
        CloudInfo(
            name="azure",
            display_name="Azure",
            storage_usd_per_gb_month=0.08,
            provisioning_minutes=6.0,
            spot_interruptions_per_hour=0.06,
            source="https://azure.microsoft.com/pricing/details/managed-disks/",
        ),
        CloudInfo(
            name="lambda",
            display_name="Lambda",
            storage_usd_per_gb_month=0.20,
            provisioning_minutes=5.0,
            spot_interruptions_per_hour=0.0,
            supports_spot=False,
            source="https://lambda.ai/pricing (persistent filesystem)",
        ),
        CloudInfo(
            name="runpod",
            display_name="RunPod",
            storage_usd_per_gb_month=0.10,
            provisioning_minutes=2.0,
            spot_interruptions_per_hour=0.08,
            multi_node=False,  # SkyPilot: CloudImplementationFeatures.MULTI_NODE unsupported on RunPod
            source="https://www.runpod.io/pricing (volume disk)",
        ),
        CloudInfo(
            name="vast",
            display_name="Vast.ai",
            storage_usd_per_gb_month=0.15,
            provisioning_minutes=3.0,
            spot_interruptions_per_hour=0.10,
            multi_node=False,  # an instance is one machine (SkyPilot: multi-node unsupported on Vast)
            source="https://vast.ai/pricing (storage_cost varies by host; median)",
        ),
        CloudInfo(
            name="nebius",
            display_name="Nebius",
            storage_usd_per_gb_month=0.08,
            provisioning_minutes=4.0,
            spot_interruptions_per_hour=0.05,
            source="https://nebius.com/prices (network SSD)",
        ),
    )
}


class PriceQuote(BaseModel):
    """One price: a GPU on one cloud, region and market (on-demand or spot), per GPU-hour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str
    region: str
    gpu: str = Field(description="Canonical GPU name (see vibeml.catalog.gpus).")
    spot: bool = False
    usd_per_gpu_hour: float = Field(gt=0)
    gpu_counts: tuple[int, ...] = Field((1,), description="GPU counts one machine can be rented with.")
    instance: str = ""
    source: str = ""
    as_of: date | None = None
    live: bool = Field(False, description="True for quotes fetched at run time (they win over the table).")
    offer_id: str | None = Field(None, description="Provider offer id for live quotes (e.g. a Vast ask id).")

    @field_validator("gpu")
    @classmethod
    def _canonical_gpu(cls, v: str) -> str:
        return resolve_gpu(v).name

    @field_validator("cloud")
    @classmethod
    def _lower_cloud(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("gpu_counts")
    @classmethod
    def _counts(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(c < 1 for c in v):
            raise ValueError("gpu_counts must hold positive integers")
        return tuple(sorted(set(v)))

    @field_validator("usd_per_gpu_hour")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("usd_per_gpu_hour must be finite")
        return v

    @property
    def key(self) -> tuple[str, str, str, bool]:
        """What a live quote replaces: (cloud, region, gpu, spot)."""
        return (self.cloud, self.region, self.gpu, self.spot)


class PriceTable(BaseModel):
    """A set of quotes with lookups. Immutable; build variants with :meth:`with_live`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quotes: tuple[PriceQuote, ...]

    def with_live(self, live: Iterable[PriceQuote], *, replace_cloud: bool = False) -> PriceTable:
        """Lay live quotes over this table.

        Args:
            live: Quotes fetched at run time (marked ``live=True`` here if they are not already).
            replace_cloud: When true, a cloud that has any live quote keeps only its live quotes (use
                this when the live source lists everything that cloud offers right now, e.g. a Vast search).
        """
        fresh = [q if q.live else q.model_copy(update={"live": True}) for q in live]
        live_keys = {q.key for q in fresh}
        live_clouds = {q.cloud for q in fresh}
        kept = [q for q in self.quotes if q.key not in live_keys and not (replace_cloud and q.cloud in live_clouds)]
        return PriceTable(quotes=(*kept, *fresh))

    def filter(
        self,
        *,
        gpu: str | None = None,
        cloud: str | None = None,
        spot: bool | None = None,
        gpu_count: int | None = None,
    ) -> list[PriceQuote]:
        """Quotes matching every given criterion (any GPU alias works)."""
        gpu_name = resolve_gpu(gpu).name if gpu else None
        cloud_name = cloud.lower() if cloud else None
        return [
            q
            for q in self.quotes
            if (gpu_name is None or q.gpu == gpu_name)
            and (cloud_name is None or q.cloud == cloud_name)
            and (spot is None or q.spot == spot)
            and (gpu_count is None or gpu_count in q.gpu_counts)
        ]

    def cheapest(
        self,
        gpu: str,
        *,
        cloud: str | None = None,
        spot: bool = False,
        gpu_count: int | None = None,
    ) -> PriceQuote | None:
        """The lowest $/GPU-hour quote for a GPU (live quotes win ties)."""
        found = self.filter(gpu=gpu, cloud=cloud, spot=spot, gpu_count=gpu_count)
        if not found:
            return None
        return min(found, key=lambda q: (q.usd_per_gpu_hour, not q.live, q.cloud, q.region))

    @property
    def clouds(self) -> list[str]:
        return sorted({q.cloud for q in self.quotes})

    @property
    def gpus(self) -> list[str]:
        return sorted({q.gpu for q in self.quotes})


_COLUMNS = (
    "cloud",
    "region",
    "gpu",
    "instance",
    "gpu_counts",
    "on_demand_usd_per_gpu_hour",
    "spot_usd_per_gpu_hour",
    "source",
    "as_of",
)


def parse_price_csv(text: str) -> PriceTable:
    """Parse a price table in ``prices.csv``'s format (one row → an on-demand and a spot quote).

    Raises:
        ConfigurationError: a missing column or an unreadable row (with its line number).
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigurationError(f"price table lacks columns {missing}", {"columns": reader.fieldnames})
    quotes: list[PriceQuote] = []
    for lineno, row in enumerate(reader, start=2):
        try:
            counts = tuple(int(c) for c in row["gpu_counts"].split("|"))
            as_of = date.fromisoformat(row["as_of"]) if row["as_of"] else None
            common = {
                "cloud": row["cloud"],
                "region": row["region"],
                "gpu": row["gpu"],
                "gpu_counts": counts,
                "instance": row["instance"],
                "source": row["source"],
                "as_of": as_of,
            }
            for spot, column in ((False, "on_demand_usd_per_gpu_hour"), (True, "spot_usd_per_gpu_hour")):
                value = (row[column] or "").strip()
                if value:
                    quotes.append(PriceQuote(spot=spot, usd_per_gpu_hour=float(value), **common))
        except (ValueError, KeyError, ConfigurationError) as exc:
            raise ConfigurationError(
                f"price table line {lineno} is invalid: {exc}", {"line": lineno, "row": dict(row)}
            ) from exc
    return PriceTable(quotes=tuple(quotes))


@functools.lru_cache(maxsize=1)
def _bundled() -> PriceTable:
    text = resources.files("vibeml.catalog").joinpath("prices.csv").read_text(encoding="utf-8")
    return parse_price_csv(text)


def load_price_table(live: Iterable[PriceQuote] | None = None) -> PriceTable:
    """The bundled price table, with live quotes laid over it when given."""
    table = _bundled()
    return table.with_live(live) if live else table


# ------------------------------------------------------------------------------------------ live sources


def quotes_from_vast_offers(offers: Iterable[Mapping[str, Any]], *, spot: bool | None = None) -> list[PriceQuote]:
    """Turn Vast.ai offers (``search offers`` results) into per-GPU live quotes.

    ``dph_total`` is the whole machine's on-demand price; ``min_bid`` its interruptible floor. Offers with
    an unknown GPU or no price are skipped.

    Args:
        offers: Offer dicts with ``id``, ``gpu_name``, ``num_gpus``, ``dph_total``, optional ``min_bid``
            and ``geolocation``.
        spot: Which market the search was for: False → on-demand only, True → bids only, None → both.
    """
    quotes: list[PriceQuote] = []
    for offer in offers:
        gpu = try_resolve_gpu(str(offer.get("gpu_name") or ""))
        n = int(offer.get("num_gpus") or 0)
        if gpu is None or n < 1:
            continue
        common = {
            "cloud": "vast",
            "region": str(offer.get("geolocation") or "global"),
            "gpu": gpu.name,
            "gpu_counts": (n,),
            "instance": f"{n}x {offer.get('gpu_name')}",
            "source": f"vast offer {offer.get('id')}",
            "as_of": date.today(),
            "live": True,
            "offer_id": None if offer.get("id") is None else str(offer.get("id")),
        }
        for is_spot, field in ((False, "dph_total"), (True, "min_bid")):
            if spot is not None and spot != is_spot:
                continue
            price = offer.get(field)
            if isinstance(price, (int, float)) and math.isfinite(price) and price > 0:
                quotes.append(PriceQuote(spot=is_spot, usd_per_gpu_hour=float(price) / n, **common))
    return quotes


def quotes_from_sky_catalog(text: str, cloud: str) -> list[PriceQuote]:
    """Per-GPU quotes from a SkyPilot ``vms.csv`` catalogue (the cheapest instance per region and market).

    Rows without a known accelerator or with a fractional count are skipped; prices are per instance
    and divided by the accelerator count.
    """
    best: dict[tuple[str, str, bool], tuple[float, set[int], str]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        gpu = try_resolve_gpu(row.get("AcceleratorName") or "")
        try:
            count_f = float(row.get("AcceleratorCount") or 0)
        except ValueError:
            continue
        if gpu is None or count_f < 1 or not count_f.is_integer():
            continue
        count = int(count_f)
        for is_spot, column in ((False, "Price"), (True, "SpotPrice")):
            try:
                price = float(row.get(column) or "nan")
            except ValueError:
                continue
            if not math.isfinite(price) or price <= 0:
                continue
            key = (row.get("Region") or "unknown", gpu.name, is_spot)
            per_gpu = price / count
            held = best.get(key)
            counts = (held[1] if held else set()) | {count}
            if held is None or per_gpu < held[0]:
                best[key] = (per_gpu, counts, row.get("InstanceType") or "")
            else:
                best[key] = (held[0], counts, held[2])
    return [
        PriceQuote(
            cloud=cloud,
            region=region,
            gpu=gpu,
            spot=is_spot,
            usd_per_gpu_hour=price,
            gpu_counts=tuple(sorted(counts)),
            instance=instance,
            live=True,
            source=f"SkyPilot catalog ({cloud}/vms.csv)",
            as_of=date.today(),
        )
        for (region, gpu, is_spot), (price, counts, instance) in sorted(best.items())
    ]


def read_sky_catalogs(root: str | Path | None = None, *, runtime_dir: str | Path | None = None) -> list[PriceQuote]:
    """Quotes from SkyPilot catalogues already cached on this machine (no download, no SkyPilot import).

    Looks in ``root`` or ``<runtime_dir>/.sky/catalogs/v8`` (``runtime_dir`` is ``SKY_RUNTIME_DIR`` from the
    settings, ``settings.skypilot.runtime_dir``; your home when unset), one ``<cloud>/vms.csv`` per cloud;
    clouds VibeML does not know are skipped.
    """
    if root is None:
        root = Path(runtime_dir or Path.home()).expanduser() / ".sky" / "catalogs" / "v8"
    quotes: list[PriceQuote] = []
    for path in sorted(Path(root).glob("*/vms.csv")):
        cloud = path.parent.name.lower()
        if cloud not in CLOUDS:
            continue
        try:
            quotes.extend(quotes_from_sky_catalog(path.read_text(encoding="utf-8"), cloud))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return quotes
