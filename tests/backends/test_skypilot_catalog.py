"""Seeding SkyPilot's catalogues from VibeML's price table, reading them back, and the `vibeml sky` CLI."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vibeml.backends.skypilot.catalog import (
    MARKER,
    catalog_root,
    render_vms_csv,
    seed_sky_catalogs,
    sky_accelerator_name,
    unseed_sky_catalogs,
)
from vibeml.catalog.prices import load_price_table, read_sky_catalogs
from vibeml.settings import Settings

SKY_REASON = "SkyPilot is an optional extra (pip install 'vibeml[sky]'); `make install` adds it for tests"


def test_accelerator_names() -> None:
    assert [sky_accelerator_name(g) for g in ("H100", "A100-40GB", "A100 80GB", "RTX 4090", "RTX A6000", "T4")] == [
        "H100",
        "A100",
        "A100-80GB",
        "RTX4090",
        "RTXA6000",
        "T4",
    ]


def test_catalog_root_follows_sky_runtime_dir(tmp_path: Path) -> None:
    runtime = Settings.from_env({"SKY_RUNTIME_DIR": str(tmp_path)}).skypilot.runtime_dir
    assert catalog_root(runtime) == tmp_path / ".sky" / "catalogs" / "v8"
    assert catalog_root() == Path.home() / ".sky" / "catalogs" / "v8"


def test_seed_round_trips_through_read_sky_catalogs(tmp_path: Path) -> None:
    report = seed_sky_catalogs(tmp_path)
    table = load_price_table()
    assert set(report.written) == set(table.clouds)
    assert not list(tmp_path.rglob("*.md5"))  # no md5: SkyPilot treats them as hand-made, never refetches
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically, nothing left beside them
    assert {(Path(p).stat().st_mode & 0o777) for p in report.written.values()} == {0o644}  # as SkyPilot's own
    quotes = read_sky_catalogs(tmp_path)
    back = {(q.cloud, q.region, q.gpu, q.spot): q.usd_per_gpu_hour for q in quotes}
    skipped_gcp = {"T4", "V100"}  # GPUs on general-purpose GCP VMs need host specs the table lacks
    for q in table.quotes:
        if (q.cloud == "lambda" and q.spot) or (q.cloud == "gcp" and q.gpu in skipped_gcp):
            continue
        assert back[(q.cloud, q.region, q.gpu, q.spot)] == pytest.approx(q.usd_per_gpu_hour, abs=1e-4), q


def test_seed_keeps_skypilots_own_catalogues_unless_forced(tmp_path: Path) -> None:
    fetched = tmp_path / "aws" / "vms.csv"
    fetched.parent.mkdir(parents=True)
    fetched.write_text("InstanceType,AcceleratorName\np5.48xlarge,H100\n")
    report = seed_sky_catalogs(tmp_path, clouds=["aws", "runpod"])
    assert set(report.written) == {"runpod"} and "aws" in report.kept
    assert fetched.read_text().startswith("InstanceType,AcceleratorName\n")
    again = seed_sky_catalogs(tmp_path, clouds=["runpod"])  # ours: refreshed freely
    assert set(again.written) == {"runpod"}
    forced = seed_sky_catalogs(tmp_path, clouds=["aws"], force=True)
    assert set(forced.written) == {"aws"}
    removed = unseed_sky_catalogs(tmp_path)
    assert sorted(Path(p).parent.name for p in removed) == ["aws", "runpod"]
    assert not (tmp_path / MARKER).exists() and not fetched.exists()


def test_gcp_rows_use_skypilots_gpu_and_host_layout() -> None:
    text, skipped = render_vms_csv("gcp", load_price_table().quotes)
    lines = text.splitlines()
    assert lines[0].startswith("InstanceType,vCPUs,MemoryGiB,AcceleratorName")
    assert any(line.startswith(",,,H100,1,") for line in lines)
    assert any(line.startswith("a3-highgpu-1g,") and line.endswith(",0.0,0.0") for line in lines)
    assert skipped and all(s.startswith("gcp/") for s in skipped)


def test_skypilot_reads_the_seeded_catalogues_offline(tmp_path: Path) -> None:
    """SkyPilot's own catalogue code prices our GPUs from the seeded files (no download, no server)."""
    if importlib.util.find_spec("sky") is None:
        pytest.skip(SKY_REASON)
    seed_sky_catalogs(catalog_root(tmp_path))
    code = textwrap.dedent("""
        import json
        import sky.catalog as c
        out = {}
        for cloud in ("aws", "runpod", "vast", "lambda", "gcp", "nebius", "azure"):
            accs = c.list_accelerators(gpus_only=True, clouds=cloud)
            out[cloud] = {name: sorted((i.accelerator_count, i.price, i.spot_price) for i in infos)
                          for name, infos in accs.items()}
        out["cost"] = [c.get_hourly_cost("p5.48xlarge", False, None, None, clouds="aws"),
                       c.get_hourly_cost("1x_RTX4090", True, None, None, clouds="vast")]
        print(json.dumps(out, default=str))
    """)
    env = {"SKY_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["cost"] == [pytest.approx(6.88 * 8), pytest.approx(0.18)]
    assert [1.0, pytest.approx(2.69), pytest.approx(2.19)] in [list(x) for x in out["runpod"]["H100"]]
    assert out["gcp"]["H100"][0][:2] == [1.0, pytest.approx(11.06)]
    assert "RTX4090" in out["vast"] and "A100" in out["lambda"]
    assert not (tmp_path / ".sky" / "api_server").exists()
    assert not list(tmp_path.rglob("*.md5"))  # nothing was fetched


# ------------------------------------------------------------------------------------------ CLI


def _app() -> typer.Typer:
    from vibeml.cli import sky as sky_cli

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    sky_cli.register(app)
    return app


def test_cli_seed_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path))
    result = CliRunner().invoke(_app(), ["sky", "seed-catalog", "--cloud", "runpod", "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["written"]) == {"runpod"}
    assert read_sky_catalogs(runtime_dir=tmp_path)
    result = CliRunner().invoke(_app(), ["sky", "seed-catalog", "--remove", "--json"])
    assert len(json.loads(result.output)["removed"]) == 1


def test_cli_export_writes_a_task_skypilot_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("sky") is None:
        pytest.skip(SKY_REASON)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path))
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "hi", "output": "hello"}\n')
    out = tmp_path / "task.yaml"
    args = [
        "sky",
        "export",
        "-m",
        "Qwen/Qwen2.5-0.5B",
        "-d",
        str(data),
        "--gpu",
        "H100",
        "--gpu-count",
        "8",
        "--nodes",
        "2",
        "--spot",
        "--max-cost",
        "100",
        "--effective-batch",  # the batch is split over the 16 GPUs: it must split evenly
        "16",
        "-o",
        str(out),
        "--json",
    ]
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        result = CliRunner().invoke(_app(), args)
    finally:  # a first `import sky` configures the root logger; keep other tests' logging as it was
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    assert result.exit_code == 0, result.output
    import sky

    task = sky.Task.from_yaml(str(out))
    assert task.num_nodes == 2
    (res,) = task.resources
    assert res.accelerators == {"H100": 8} and res.use_spot and res.max_hourly_cost
    assert task.file_mounts["~/vibeml-job/inputs/dataset.jsonl"] == str(data)
    assert "/vibeml-store" in task.storage_mounts
    bad = CliRunner().invoke(_app(), ["sky", "export", "-m", "m/x", "-d", "d/x", "--gpu", "NoSuchGPU", "--json"])
    assert bad.exit_code != 0 and "NoSuchGPU" in bad.output
