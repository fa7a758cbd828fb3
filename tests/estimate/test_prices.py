"""Where `vibeml plan` gets prices: the dated table, live Vast offers (the fake Vast on loopback, cached
under VIBEML_HOME), SkyPilot's catalogue; stale table prices; failures fall back to the table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vibeml.catalog.prices import PriceQuote, PriceTable, load_price_table
from vibeml.cli.estimate import register
from vibeml.estimate import prices as price_sources
from vibeml.estimate.prices import STALE_AFTER_DAYS, VAST_CACHE_MAX_AGE_S, plan_prices, stale_quotes
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast

KEY = "vk_test_" + "c" * 32
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVast]:
    server = FakeVast(api_key=KEY, tick_interval=0.01, workdir_root=tmp_path / "fake-vast", n_offers=120).start()
    yield server
    server.close()


@pytest.fixture
def no_sky(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """SkyPilot's runtime folder in the test's tmp (no catalogue in it yet)."""
    root = tmp_path / "sky-runtime"
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(root))
    return root


@pytest.fixture
def vast_url(fake: FakeVast, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_sky: Path) -> FakeVast:
    monkeypatch.setenv("VIBEML_VAST_URL", fake.url)
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # this machine's ~/.vast_api_key stays out of reach
    return fake


@pytest.fixture
def with_key(vast_url: FakeVast, monkeypatch: pytest.MonkeyPatch) -> FakeVast:
    monkeypatch.setenv("VAST_API_KEY", KEY)
    return vast_url


def _source(info: price_sources.PriceInfo, name: str) -> price_sources.PriceSource:
    return next(s for s in info.sources if s.name == name)


def test_without_a_key_the_table_is_used_quietly(vast_url: FakeVast) -> None:
    table, info = plan_prices(Settings.from_env(), now=NOW)
    assert table == load_price_table()
    assert not _source(info, "vast").used and "no Vast key" in _source(info, "vast").detail
    assert info.warnings == [] and vast_url.count() == 0
    assert _source(info, "table").as_of == date(2026, 11, 1)


def test_live_offers_replace_the_vast_rows_and_are_cached_with_their_age(with_key: FakeVast) -> None:
    settings = Settings.from_env()
    table, info = plan_prices(settings, now=NOW)
    vast = _source(info, "vast")
    assert vast.used and not vast.cached and vast.quotes > 0 and "fetched just now" in vast.detail
    rows = table.filter(cloud="vast")
    assert rows and all(q.live and q.offer_id for q in rows)  # the table's Vast rows are gone
    assert {q.spot for q in rows} == {False, True}  # on-demand and bids: the plan allows both
    assert with_key.count("search") == 2
    assert (settings.home / "cache" / "vast-offers.json").is_file()
    assert KEY not in (settings.home / "cache" / "vast-offers.json").read_text()

    later = NOW + timedelta(minutes=3)
    again, info2 = plan_prices(settings, now=later)
    cached = _source(info2, "vast")
    assert cached.cached and cached.age_seconds == 180.0 and "3 min ago (cached)" in cached.detail
    assert again.filter(cloud="vast") == rows and with_key.count("search") == 2  # no new search

    _, info3 = plan_prices(settings, now=NOW + timedelta(seconds=VAST_CACHE_MAX_AGE_S + 1))
    assert not _source(info3, "vast").cached and with_key.count("search") == 4  # too old: searched again

    _, on_demand = plan_prices(settings, spot=False, now=later)  # another search: not the cached one
    assert not _source(on_demand, "vast").cached and with_key.count("search") == 5


def test_offline_skips_every_live_source(with_key: FakeVast) -> None:
    table, info = plan_prices(Settings.from_env(), offline=True, now=NOW)
    assert table == load_price_table() and with_key.count() == 0
    assert info.offline and all("offline" in s.detail for s in info.sources if s.name != "table")


def test_a_vast_failure_falls_back_to_the_table_with_a_warning(with_key: FakeVast) -> None:
    with_key.faults.server_error(n=20, status=503)
    table, info = plan_prices(Settings.from_env(), now=NOW)
    assert table == load_price_table()
    assert not _source(info, "vast").used
    (warning,) = info.warnings
    assert "live Vast.ai prices unavailable" in warning and "using the table" in warning and KEY not in warning


def test_cli_plan_shows_live_prices_their_age_and_falls_back_without_a_traceback(with_key: FakeVast) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    args = ["plan", "-m", "Qwen/Qwen2.5-0.5B", "--max-steps", "50", "--top", "3"]
    live = runner.invoke(app, [*args, "--json"])
    assert live.exit_code == 0, live.output
    report = json.loads(live.stdout)
    vast = next(s for s in report["prices"]["sources"] if s["name"] == "vast")
    assert vast["used"] and vast["fetched_at"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0 and "live Vast.ai offers" in shown.output and "(cached)" in shown.output
    offline = runner.invoke(app, [*args, "--offline"])
    assert offline.exit_code == 0 and "skipped (--offline)" in offline.output

    (Path(Settings.from_env().home) / "cache" / "vast-offers.json").unlink()
    with_key.faults.server_error(n=20, status=503)
    failed = runner.invoke(app, args)
    assert failed.exit_code == 0, failed.output
    assert "live Vast.ai prices unavailable" in failed.output and "Traceback" not in failed.output


def test_table_prices_past_the_stale_age_are_flagged() -> None:
    quote = PriceQuote(cloud="aws", region="us-east-1", gpu="H100", usd_per_gpu_hour=3.0, as_of=date(2026, 11, 1))
    table = PriceTable(quotes=(quote,))

    class Row:
        cloud, region, gpu, spot = "aws", "us-east-1", "H100", False

    fresh = date(2026, 11, 1) + timedelta(days=STALE_AFTER_DAYS)
    assert stale_quotes([Row()], table, fresh) == []
    (stale,) = stale_quotes([Row()], table, fresh + timedelta(days=1))
    assert stale.age_days == STALE_AFTER_DAYS + 1 and stale.as_of == date(2026, 11, 1)


def test_skypilot_catalogue_is_used_when_installed_but_not_one_seeded_from_our_table(
    no_sky: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vibeml.backends.skypilot.catalog import catalog_root, seed_sky_catalogs

    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))  # no Vast key anywhere
    monkeypatch.setattr(price_sources, "_sky_installed", lambda: True)
    root = catalog_root(no_sky)
    seed_sky_catalogs(root, clouds=["aws"])  # VibeML's own table in SkyPilot's format: not a source
    lam = root / "lambda" / "vms.csv"
    lam.parent.mkdir(parents=True)
    lam.write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region\n"
        "gpu_1x_h100_sxm5,H100,1,26,225,,2.22,,us-east-1\n",
        encoding="utf-8",
    )
    table, info = plan_prices(Settings.from_env(), now=NOW)
    sky = _source(info, "skypilot")
    assert sky.used and sky.quotes == 1 and "SkyPilot catalogue" in sky.detail
    (h100,) = [q for q in table.filter(cloud="lambda", gpu="H100") if q.region == "us-east-1"]
    assert h100.usd_per_gpu_hour == 2.22 and h100.live
    assert table.filter(cloud="aws") == load_price_table().filter(cloud="aws")

    monkeypatch.setattr(price_sources, "_sky_installed", lambda: False)
    _, info2 = plan_prices(Settings.from_env(), now=NOW)
    assert not _source(info2, "skypilot").used and "not installed" in _source(info2, "skypilot").detail
