"""The bundled price table and the live-price seam."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from vibeml.catalog.gpus import GPUS
from vibeml.catalog.prices import CLOUDS, PriceQuote, load_price_table, parse_price_csv
from vibeml.exceptions import ConfigurationError

HEADER = "cloud,region,gpu,instance,gpu_counts,on_demand_usd_per_gpu_hour,spot_usd_per_gpu_hour,source,as_of\n"


def test_table_covers_every_cloud_dated_and_sourced() -> None:
    table = load_price_table()
    assert set(table.clouds) == {"aws", "gcp", "azure", "lambda", "runpod", "vast", "nebius"}
    assert set(table.clouds) <= set(CLOUDS)
    for q in table.quotes:
        assert q.gpu in GPUS
        assert q.source.startswith("https://")
        assert q.as_of is not None and q.as_of <= date(2027, 1, 1)
        assert 0.05 < q.usd_per_gpu_hour < 20
        assert not q.live


def test_spot_is_cheaper_and_lambda_has_none() -> None:
    table = load_price_table()
    for q in table.filter(spot=True):
        on_demand = [o for o in table.filter(gpu=q.gpu, cloud=q.cloud, spot=False) if o.region == q.region]
        assert on_demand and q.usd_per_gpu_hour < on_demand[0].usd_per_gpu_hour
    assert table.filter(cloud="lambda", spot=True) == []


def test_price_points_follow_facts() -> None:
    table = load_price_table()
    h100 = {q.cloud: q.usd_per_gpu_hour for q in table.filter(gpu="H100", spot=False)}
    assert 1.8 <= h100["vast"] <= 2.4 and h100["runpod"] == 2.69 and 3.8 <= h100["lambda"] <= 4.3
    assert h100["aws"] == pytest.approx(6.88)
    assert 0.3 <= table.cheapest("RTX 4090").usd_per_gpu_hour <= 0.7
    assert 0.12 <= table.cheapest("RTX 4090", spot=True).usd_per_gpu_hour <= 0.25
    assert table.cheapest("A10G").usd_per_gpu_hour == pytest.approx(1.01)


def test_gpu_counts_restrict_choices() -> None:
    table = load_price_table()
    assert table.filter(gpu="H100", cloud="aws", gpu_count=1) == []
    assert table.filter(gpu="H100", cloud="aws", gpu_count=8)


def test_live_quote_replaces_table_quote() -> None:
    table = load_price_table()
    live = PriceQuote(cloud="vast", region="global", gpu="4090", usd_per_gpu_hour=0.29, offer_id="123")
    merged = table.with_live([live])
    vast_4090 = merged.filter(gpu="RTX 4090", cloud="vast", spot=False)
    assert [q.usd_per_gpu_hour for q in vast_4090] == [0.29] and vast_4090[0].live
    assert len(merged.quotes) == len(table.quotes)
    only_live = table.with_live([live], replace_cloud=True)
    assert [q.gpu for q in only_live.filter(cloud="vast")] == ["RTX 4090"]
    assert load_price_table([live]).cheapest("RTX 4090", cloud="vast").offer_id == "123"


def test_live_wins_ties() -> None:
    table = load_price_table()
    best = table.cheapest("H100")
    tie = best.model_copy(update={"region": "live-region", "live": True})
    assert table.with_live([tie]).cheapest("H100").live


def test_parse_errors_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        parse_price_csv("cloud,region\naws,us\n")
    with pytest.raises(ConfigurationError) as err:
        parse_price_csv(HEADER + "aws,us-east-1,H100,p5,8,abc,,https://x,2026-11-01\n")
    assert err.value.context["line"] == 2
    with pytest.raises(ConfigurationError):
        parse_price_csv(HEADER + "aws,us-east-1,NOPE,p5,8,1.0,,https://x,2026-11-01\n")


def test_parse_spot_optional() -> None:
    table = parse_price_csv(HEADER + "lambda,us,A10,gpu_1x_a10,1,0.75,,https://x,2026-11-01\n")
    assert [(q.spot, q.usd_per_gpu_hour) for q in table.quotes] == [(False, 0.75)]


def test_vast_offers_become_live_quotes() -> None:
    from vibeml.catalog.prices import quotes_from_vast_offers

    offers = [
        {
            "id": 101,
            "gpu_name": "RTX 4090",
            "num_gpus": 2,
            "dph_total": 0.70,
            "min_bid": 0.30,
            "geolocation": "Texas, US",
        },
        {"id": 102, "gpu_name": "Quadro Mystery", "num_gpus": 1, "dph_total": 0.10},
        {"id": 103, "gpu_name": "H100 SXM", "num_gpus": 1, "dph_total": None},
    ]
    quotes = quotes_from_vast_offers(offers)
    assert [(q.gpu, q.spot, q.usd_per_gpu_hour, q.gpu_counts) for q in quotes] == [
        ("RTX 4090", False, 0.35, (2,)),
        ("RTX 4090", True, 0.15, (2,)),
    ]
    assert all(q.live and q.offer_id == "101" and q.region == "Texas, US" for q in quotes)
    assert [q.spot for q in quotes_from_vast_offers(offers, spot=False)] == [False]
    table = load_price_table(quotes)
    assert table.cheapest("RTX 4090", spot=True).offer_id == "101"


def test_sky_catalog_cached_on_disk(tmp_path: Path) -> None:
    from vibeml.catalog.prices import read_sky_catalogs

    csv_text = (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n"
        "g5.xlarge,A10G,1,4,16,1.006,0.40,us-east-1,us-east-1a\n"
        "g5.12xlarge,A10G,4,48,192,5.672,2.2,us-east-1,us-east-1a\n"
        "m5.large,,,2,8,0.096,0.03,us-east-1,us-east-1a\n"
        "g4ad.xlarge,Radeon,0.5,4,16,0.38,,us-east-1,us-east-1a\n"
    )
    (tmp_path / "aws").mkdir()
    (tmp_path / "aws" / "vms.csv").write_text(csv_text)
    (tmp_path / "madeup").mkdir()
    (tmp_path / "madeup" / "vms.csv").write_text(csv_text)
    quotes = read_sky_catalogs(tmp_path)
    od = next(q for q in quotes if not q.spot)
    assert od.cloud == "aws" and od.gpu == "A10G" and od.gpu_counts == (1, 4)
    assert od.usd_per_gpu_hour == pytest.approx(1.006) and od.instance == "g5.xlarge"
    assert {q.cloud for q in quotes} == {"aws"}
    assert read_sky_catalogs(runtime_dir=tmp_path / "nothing") == []
