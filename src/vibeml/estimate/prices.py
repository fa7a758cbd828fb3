"""Where `vibeml plan` gets its prices, and how old they are.

Three sources, laid over each other (:meth:`~vibeml.catalog.prices.PriceTable.with_live`):

1. **The dated table** shipped with VibeML (``catalog/prices.csv``): always there; every row has the date
   it was read from the provider's page. A table price older than :data:`STALE_AFTER_DAYS` (30 days —
   cloud list prices move about monthly) is flagged as stale.
2. **Live Vast.ai offers** when a Vast key is stored (``VAST_API_KEY``, the credential store or Vast's own
   key file): one marketplace search per market (on-demand, plus bids when spot is allowed) through the
   existing client (:mod:`vibeml.vast`). They replace the table's Vast rows (the search lists what Vast
   offers right now). The quotes are cached under ``VIBEML_HOME/cache/`` and reused for
   :data:`VAST_CACHE_MAX_AGE_S` (10 minutes), with their age shown. A failed search falls back to the
   table with a warning, never an error.
3. **SkyPilot's catalogue** when SkyPilot is installed and has catalogues cached on this machine
   (``<SKY_RUNTIME_DIR or ~>/.sky/catalogs/v8/<cloud>/vms.csv``); read as CSV, SkyPilot is never imported.
   Catalogues VibeML seeded from its own table (``vibeml sky seed-catalogs``) are not a price source.
   Each quote is dated by its file's modification time.

``offline=True`` (``vibeml plan --offline``) uses the table alone: no network, no cache, no catalogue.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vibeml.catalog.prices import PriceQuote, PriceTable, load_price_table, quotes_from_sky_catalog
from vibeml.exceptions import CredentialError, VibeMLError

if TYPE_CHECKING:
    from vibeml.settings import Settings
    from vibeml.vast import VastAI

__all__ = [
    "STALE_AFTER_DAYS",
    "VAST_CACHE_MAX_AGE_S",
    "PriceInfo",
    "PriceSource",
    "StaleQuote",
    "plan_prices",
    "stale_quotes",
]

logger = logging.getLogger(__name__)

#: A table price older than this many days is flagged as stale.
STALE_AFTER_DAYS = 30
#: Cached Vast quotes younger than this are reused instead of searching again.
VAST_CACHE_MAX_AGE_S = 600.0
_CACHE_NAME = "vast-offers.json"
_SKY_MARKER = ".vibeml-seeded.json"  # vibeml.backends.skypilot.catalog.MARKER


class PriceSource(BaseModel):
    """One price source and what became of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["table", "vast", "skypilot"]
    used: bool
    quotes: int = 0
    as_of: date | None = Field(None, description="table: the oldest row's date.")
    fetched_at: datetime | None = Field(None, description="vast: the search; skypilot: the newest catalogue file.")
    age_seconds: float | None = None
    cached: bool = False
    detail: str = ""


class StaleQuote(BaseModel):
    """A table price older than the stale age, that a shown option is priced with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str
    region: str
    gpu: str
    spot: bool
    as_of: date
    age_days: int


class PriceInfo(BaseModel):
    """Where a plan's prices came from (``PlanReport.prices``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offline: bool
    stale_after_days: int = STALE_AFTER_DAYS
    sources: list[PriceSource]
    stale: list[StaleQuote] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def _age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 172_800:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86_400)} days ago"


def _table_source(table: PriceTable, today: date) -> PriceSource:
    dates = sorted({q.as_of for q in table.quotes if q.as_of is not None})
    oldest = dates[0] if dates else None
    detail = "dated table"
    if oldest is not None:
        days = (today - oldest).days
        detail += f", as of {oldest.isoformat()} ({days} days old"
        detail += f"; stale after {STALE_AFTER_DAYS})" if days > STALE_AFTER_DAYS else ")"
    return PriceSource(name="table", used=True, quotes=len(table.quotes), as_of=oldest, detail=detail)


# ------------------------------------------------------------------------------------------------ Vast


def _vast_query(gpu_counts: Sequence[int], settings: Settings) -> str:
    from vibeml.backends.vast.offers import offer_filters, offer_query

    o = settings.vast
    filters = offer_filters(
        gpu=None,
        gpu_count=1,
        min_gpu_ram_gb=None,
        min_reliability=o.min_reliability,
        min_cuda=o.min_cuda,
        min_disk_gb=None,
    )
    filters["num_gpus"] = {"in": sorted({int(c) for c in gpu_counts})}
    return offer_query(filters)


def _cache_key(server: str, query: str, kinds: Sequence[str], limit: int) -> str:
    text = json.dumps([server, query, list(kinds), limit])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(path: Path, key: str) -> tuple[list[PriceQuote], datetime] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        fetched = datetime.fromisoformat(str(data["fetched_at"]))
        quotes = [PriceQuote.model_validate(q) for q in data["quotes"]]
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None  # absent, torn or from another version: search again
    return quotes, fetched if fetched.tzinfo else fetched.replace(tzinfo=timezone.utc)


def _write_cache(path: Path, key: str, quotes: list[PriceQuote], fetched: datetime) -> None:
    from vibeml.safe_paths import atomic_write_bytes

    body = {
        "key": key,
        "fetched_at": fetched.isoformat(),
        "quotes": [q.model_dump(mode="json") for q in quotes],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(body).encode("utf-8"), mode=0o600)
    except OSError as exc:  # a cache that cannot be written only costs the next search
        logger.debug("could not write the Vast price cache %s: %s", path, exc)


def _vast_client(settings: Settings) -> VastAI:
    from vibeml.vast import VastAI

    o = settings.vast
    return VastAI.from_settings(settings, server_url=o.url, retry=1, quiet=True, timeout=min(o.http_timeout, 15.0))


def _vast_source(
    settings: Settings,
    gpu_counts: Sequence[int],
    spot: bool | None,
    now: datetime,
    client_factory: Callable[[Settings], VastAI],
) -> tuple[list[PriceQuote], PriceSource, str | None]:
    """Live (or cached) Vast quotes, their source line and a warning (None when all went well)."""
    from vibeml.catalog.prices import quotes_from_vast_offers

    try:
        client = client_factory(settings)
    except CredentialError as exc:
        if "looked_in" in exc.context:  # no key anywhere: the table it is, quietly
            return [], PriceSource(name="vast", used=False, detail="no Vast key stored: table prices"), None
        warning = f"live Vast.ai prices unavailable ({exc.message}); using the table"
        return [], PriceSource(name="vast", used=False, detail="Vast key unusable: table prices"), warning
    except VibeMLError as exc:
        warning = f"live Vast.ai prices unavailable ({exc.message}); using the table"
        return [], PriceSource(name="vast", used=False, detail="Vast client failed: table prices"), warning
    kinds = ["on-demand"] if spot is False else (["bid"] if spot else ["on-demand", "bid"])
    limit = settings.vast.search_limit
    try:
        query = _vast_query(gpu_counts, settings)
        key = _cache_key(client.server_url, query, kinds, limit)
        path = settings.home / "cache" / _CACHE_NAME
        hit = _read_cache(path, key)
        if hit is not None:
            quotes, fetched = hit
            age = (now - fetched).total_seconds()
            if 0 <= age <= VAST_CACHE_MAX_AGE_S:
                detail = f"live Vast.ai offers, {len(quotes)} quotes, fetched {_age_text(age)} (cached)"
                src = PriceSource(
                    name="vast",
                    used=bool(quotes),
                    quotes=len(quotes),
                    fetched_at=fetched,
                    age_seconds=round(age, 1),
                    cached=True,
                    detail=detail,
                )
                return quotes, src, None
        quotes = []
        for kind in kinds:
            offers = client.search_offers(query, type=kind, order="dph_total", limit=limit)
            quotes += quotes_from_vast_offers(offers, spot=kind == "bid")
        _write_cache(path, key, quotes, now)
    except VibeMLError as exc:
        warning = f"live Vast.ai prices unavailable ({exc.message}); using the table"
        return [], PriceSource(name="vast", used=False, detail="Vast search failed: table prices"), warning
    except Exception as exc:  # anything else from the network or a malformed reply: the table, not a traceback
        warning = f"live Vast.ai prices unavailable ({type(exc).__name__}); using the table"
        return [], PriceSource(name="vast", used=False, detail="Vast search failed: table prices"), warning
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()
    detail = f"live Vast.ai offers, {len(quotes)} quotes, fetched just now"
    if not quotes:
        detail = "the Vast.ai search found no offers: table prices"
    src = PriceSource(
        name="vast", used=bool(quotes), quotes=len(quotes), fetched_at=now, age_seconds=0.0, detail=detail
    )
    return quotes, src, None


# -------------------------------------------------------------------------------------------- SkyPilot


def _seeded(root: Path) -> set[str]:
    """Catalogues VibeML wrote from its own table and nobody changed since (relative paths)."""
    try:
        marker = json.loads((root / _SKY_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(marker, dict):
        return set()
    out = set()
    for rel, digest in marker.items():
        try:
            if hashlib.sha256((root / str(rel)).read_bytes()).hexdigest() == digest:
                out.add(str(rel))
        except OSError:
            continue
    return out


def _sky_installed() -> bool:
    try:
        return importlib.util.find_spec("sky") is not None  # found, not imported
    except (ImportError, ValueError):
        return False


def _sky_source(settings: Settings, now: datetime) -> tuple[list[PriceQuote], PriceSource]:
    from vibeml.backends.skypilot.catalog import catalog_root
    from vibeml.catalog.prices import CLOUDS

    if not _sky_installed():
        return [], PriceSource(name="skypilot", used=False, detail="SkyPilot not installed")
    root = catalog_root(settings.skypilot.runtime_dir)
    seeded = _seeded(root)
    quotes: list[PriceQuote] = []
    newest: datetime | None = None
    for path in sorted(root.glob("*/vms.csv")):
        cloud = path.parent.name.lower()
        if cloud not in CLOUDS or f"{path.parent.name}/vms.csv" in seeded:
            continue
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            found = quotes_from_sky_catalog(path.read_text(encoding="utf-8"), cloud)
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        quotes += [q.model_copy(update={"as_of": mtime.date()}) for q in found]
        newest = mtime if newest is None or mtime > newest else newest
    if not quotes or newest is None:
        return [], PriceSource(name="skypilot", used=False, detail="no SkyPilot catalogue cached on this machine")
    age = max(0.0, (now - newest).total_seconds())
    detail = f"SkyPilot catalogue, {len(quotes)} quotes, updated {_age_text(age)}"
    return quotes, PriceSource(
        name="skypilot", used=True, quotes=len(quotes), fetched_at=newest, age_seconds=round(age, 1), detail=detail
    )


# ------------------------------------------------------------------------------------------------- all


def plan_prices(
    settings: Settings,
    *,
    offline: bool = False,
    gpu_counts: Sequence[int] = (1, 2, 4, 8),
    spot: bool | None = None,
    now: datetime | None = None,
    vast_client: Callable[[Settings], VastAI] | None = None,
) -> tuple[PriceTable, PriceInfo]:
    """The price table for a plan and where its prices came from (never raises for a source that fails).

    Args:
        settings: Where the key, the Vast URL, ``VIBEML_HOME`` and SkyPilot's runtime folder are.
        offline: The table alone (no network, no cache, no catalogue).
        gpu_counts: The GPU counts the plan considers (the Vast search asks for these).
        spot: The plan's market constraint (False: on-demand only, True: bids only, None: both).
        now: The current time (tests).
        vast_client: Builds the Vast client (default: from the settings; raises CredentialError without a key).
    """
    now = now or datetime.now(timezone.utc)
    table = load_price_table()
    sources = [_table_source(table, now.date())]
    warnings: list[str] = []
    if offline:
        sources.append(PriceSource(name="vast", used=False, detail="skipped (--offline)"))
        sources.append(PriceSource(name="skypilot", used=False, detail="skipped (--offline)"))
        return table, PriceInfo(offline=True, sources=sources)
    sky_quotes, sky = _sky_source(settings, now)
    if sky_quotes:
        table = table.with_live(sky_quotes)
    vast_quotes, vast, warning = _vast_source(settings, gpu_counts, spot, now, vast_client or _vast_client)
    if vast_quotes:
        table = table.with_live(vast_quotes, replace_cloud=True)
    if warning:
        logger.warning("%s", warning)
        warnings.append(warning)
    sources += [vast, sky]
    return table, PriceInfo(offline=False, sources=sources, warnings=warnings)


def stale_quotes(
    rows: Iterable[Any], table: PriceTable, today: date, max_age_days: int = STALE_AFTER_DAYS
) -> list[StaleQuote]:
    """The table prices older than ``max_age_days`` that ``rows`` (plan options) are priced with."""
    by_key = {q.key: q for q in table.quotes}
    out: list[StaleQuote] = []
    for r in rows:
        q = by_key.get((r.cloud, r.region, r.gpu, r.spot))
        if q is None or q.as_of is None:  # a Vast offer is dated today; a catalogue by its file
            continue
        age = (today - q.as_of).days
        if age > max_age_days:
            out.append(StaleQuote(cloud=q.cloud, region=q.region, gpu=q.gpu, spot=q.spot, as_of=q.as_of, age_days=age))
    return out
