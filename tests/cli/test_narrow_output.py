"""`plan`, `estimate`, `gpus`, `jobs` and `vast offers` at 80 columns: every line fits, no header is cut to
``…``, the key values (GPU, price, total cost, status, job id) are there whole; at a wide terminal the
full layout; ``--json`` the same at both widths.

The screens of `plan` (docs/estimator.md) and `jobs` (docs/cli.md) are captured here from the real
commands at 80 columns (seeded jobs, a fixed clock, the dated price table) and compared with the blocks
between ``<!-- screen: NAME -->`` and ``<!-- /screen -->``; run with WRITE_DOCS=1 to rewrite them.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibeml.cli._tables import WIDE, Alt, Col, fit_table, pack, short_count, short_model, short_money
from vibeml.cli.main import app
from vibeml.client import VibeML
from vibeml.models import JobProgress, JobRecord, JobStatus, TrainingRequest
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast

NARROW, WIDE_COLS = 80, 160
DOCS = Path(__file__).resolve().parents[2] / "docs"
#: The plan's clock: 19 days after the price table's date (no price is stale), so the screen holds still.
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
KEY = "vk_test_" + "d" * 32

PLAN_ARGS = ["plan", "--model", "Qwen/Qwen2.5-7B", "--max-steps", "2000", "--max-seq-length", "2048"]
PLAN_ARGS += ["--effective-batch", "8", "--top", "8", "--offline"]
ESTIMATE_ARGS = ["estimate", "--model", "Qwen/Qwen2.5-7B", "--gpu", "RTX 4090", "--gpu-count", "2"]
ESTIMATE_ARGS += ["--max-steps", "500"]

#: (job id, name, status, backend, model, step, max steps, loss, eval loss, cost so far)
JOBS = [
    ("vml-3f9c21a0", "support", "completed", "vast", "Qwen/Qwen2.5-7B-Instruct", 2000, 2000, 0.8123, 0.9012, 3.1504),
    ("vml-7d02be11", "sql-8b", "failed", "sky", "meta-llama/Llama-3.1-8B-Instruct", 120, 1000, 1.4471, None, 0.4102),
    ("vml-a11c5e07", None, "stopped", "local", "HuggingFaceTB/SmolLM2-135M-Instruct", 40, 200, 2.1034, 2.2201, 0.0),
    ("vml-c0ffee42", "demo", "completed", "local", "vibeml-demo", 60, 60, 3.0125, None, 0.0),
]

runner = CliRunner()


def _run(args: list[str], width: int) -> Any:
    result = runner.invoke(app, args, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def _header_lines(text: str) -> list[str]:
    """The header rows: the ones above a compact table's rule, and a wide table's ``┃`` rows."""
    lines = text.splitlines()
    heads = [lines[i - 1] for i, line in enumerate(lines) if i and line.strip() and set(line.strip()) <= {"─"}]
    return heads + [line for line in lines if "┃" in line]


def _check_narrow(text: str) -> list[str]:
    lines = _lines(text)
    too_long = [line for line in lines if len(line) > NARROW]
    assert not too_long, "\n".join(too_long)
    heads = _header_lines(text)
    assert heads, text
    assert not [h for h in heads if "…" in h], "\n".join(heads)
    return lines


def _row(lines: list[str], *values: str) -> str:
    """The one line holding every value in ``values`` (whole, each bounded by spaces or the line's end)."""
    found = [line for line in lines if all(re.search(rf"(^|\s){re.escape(v)}(\s|$)", line) for v in values)]
    assert found, f"no line holds {values!r}:\n" + "\n".join(lines)
    return found[0]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """`plan` prices at NOW: the table's age and the stale-price stars do not move with the calendar."""
    import vibeml.client
    from vibeml.estimate import prices

    monkeypatch.setattr(prices, "plan_prices", functools.partial(prices.plan_prices, now=NOW))
    monkeypatch.setattr(vibeml.client, "utcnow", lambda: NOW)
    return NOW


@pytest.fixture
def seeded_jobs(vibeml_env: Path) -> list[JobRecord]:
    svc = VibeML(Settings())
    records = []
    for i, (job_id, name, status, backend, model, step, max_steps, loss, eval_loss, cost) in enumerate(JOBS):
        at = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc) - timedelta(hours=i)
        progress = JobProgress(status=JobStatus(status), step=step, max_steps=max_steps, loss=loss, eval_loss=eval_loss)
        record = JobRecord(
            job_id=job_id,
            name=name,
            status=JobStatus(status),
            backend=backend,
            request=TrainingRequest(model=model, dataset="tatsu-lab/alpaca"),
            created_at=at,
            updated_at=at,
            finished_at=at,
            progress=progress,
            cost_so_far=cost,
        )
        records.append(svc.store.create(record))
    return records


@pytest.fixture
def vast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeVast]:
    """The fake Vast.ai on loopback, with its key (this machine's ~/.vast_api_key out of reach)."""
    server = FakeVast(api_key=KEY, tick_interval=0.01, workdir_root=tmp_path / "fake-vast", n_offers=60).start()
    monkeypatch.setenv("VIBEML_VAST_URL", server.url)
    monkeypatch.setenv("VAST_API_KEY", KEY)
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    yield server
    server.close()


def _same_json(args: list[str]) -> Any:
    narrow = _run([*args, "--json"], NARROW).stdout
    assert _run([*args, "--json"], WIDE_COLS).stdout == narrow
    return json.loads(narrow)


# ----------------------------------------------------------------------------------- the commands


def test_plan_at_80_columns_keeps_gpu_and_total_cost_whole(frozen_clock: datetime) -> None:
    report = _same_json(PLAN_ARGS)
    lines = _check_narrow(_run(PLAN_ARGS, NARROW).stdout)
    head = _header_lines("\n".join(lines))[0]
    assert head.split() == ["#", "cloud", "GPU", "config", "$/GPU-h", "hours", "cost", "$", "range", "$"]
    for o in report["options"]:
        cloud = o["cloud"] + (" spot" if o["spot"] else "")
        row = _row(lines, str(o["rank"]), f"{o['gpu_count']}× {o['gpu']}", f"{o['expected_cost']:.2f}")
        assert f"  {cloud}  " in row and f"{o['usd_per_gpu_hour']:.2f}" in row

    wide = _lines(_run(PLAN_ARGS, WIDE_COLS).stdout)
    head = next(line for line in wide if "┃" in line)
    for col in ("market", "$/GPU-h", "tok/s", "mem GiB", "expected $", "range $"):
        assert col in head
    first = report["options"][0]
    assert f"{first['cloud']}/{first['region']}" in _row(wide, f"{first['tokens_per_s']:,.0f}")


def test_estimate_at_80_columns(frozen_clock: datetime) -> None:
    report = _same_json(ESTIMATE_ARGS)
    lines = _check_narrow(_run(ESTIMATE_ARGS, NARROW).stdout)
    assert lines[0].startswith("Qwen/Qwen2.5-7B · lora · 2× RTX 4090")  # the summary breaks between its parts
    assert lines[1].startswith("effective batch")
    _row(lines, "total (nvidia-smi)", f"{report['total_gib']:.2f}")
    assert f"${report['expected_cost']:.2f}" in "\n".join(lines)
    wide = _run(ESTIMATE_ARGS, WIDE_COLS).stdout
    assert "┃ part" in wide and "· effective batch" in wide


def test_gpus_at_80_columns_wrap_only_the_clouds() -> None:
    report = _same_json(["gpus"])
    lines = _check_narrow(_run(["gpus"], NARROW).stdout)
    assert _header_lines("\n".join(lines))[0].split()[:6] == ["GPU", "GiB", "TFLOP/s", "GB/s", "on-demand", "spot"]
    for g in report["gpus"]:
        od = g["on_demand"]
        _row(
            lines, g["gpu"], f"{g['memory_gib']:.0f}", *([f"${od['usd_per_gpu_hour']:.2f} {od['cloud']}"] if od else [])
        )
    assert "bf16 TFLOP/s" in _run(["gpus"], WIDE_COLS).stdout


def test_jobs_at_80_columns(seeded_jobs: list[JobRecord]) -> None:
    records = _same_json(["jobs"])
    assert [r["job_id"] for r in records] == [j[0] for j in JOBS]
    lines = _check_narrow(_run(["jobs"], NARROW).stdout)
    for r in records:
        _row(lines, r["job_id"], r["status"], short_model(r["request"]["model"]), short_money(r["cost_so_far"]))
    assert "created" not in "\n".join(lines)  # it stays in --json and the wide layout

    wide = _lines(_run(["jobs"], WIDE_COLS).stdout)
    head = next(line for line in wide if "┃" in line)
    assert [c.strip() for c in head.strip("┃").split("┃")] == [
        "job",
        "name",
        "status",
        "backend",
        "model",
        "step",
        "loss",
        "eval",
        "cost",
        "created",
    ]
    _row(wide, "vml-3f9c21a0", "support", "vast", "$3.1504", "0.8123", "0.9012")


def test_vast_offers_at_80_columns(vast: FakeVast) -> None:
    args = ["vast", "offers", "--limit", "12"]
    report = _same_json(args)
    lines = _check_narrow(_run(args, NARROW).stdout)
    for o in report["offers"]:
        _row(lines, str(o["id"]), f"{o['num_gpus']}x {o['gpu_name']}", f"${o['dph_total']:.3f}")
    wide = _run(args, WIDE_COLS).stdout
    assert "VRAM GiB" in wide and "reliability" in wide and "location" in wide


@pytest.mark.parametrize("width", [60, 100])
def test_other_narrow_widths_fit_too(width: int, seeded_jobs: list[JobRecord], frozen_clock: datetime) -> None:
    for args in (["jobs"], PLAN_ARGS, ["gpus"]):
        text = _run(args, width).stdout
        assert max(len(line) for line in _lines(text)) <= width, text
        assert not [h for h in _header_lines(text) if "…" in h], text
        if args == ["jobs"]:
            assert all(job[0] in text and job[2] in text for job in JOBS)


# --------------------------------------------------------------------------------------- the helper


def _console(width: int) -> Any:
    from rich.console import Console

    return Console(width=width, force_terminal=False, color_system=None)


COLS = (
    Col("id"),
    Col("name", drop=1),
    Col("note", drop=2),
    Col("when", wide_only=True),
    Col("merged", narrow_only=True),
)
ROWS = [["a-1", "n" * 10, "x" * 10, "2026-11-20", Alt("wide", "narrow")]]


def _headers(table: Any) -> list[str]:
    return [str(c.header) for c in table.columns]


def test_fit_table_keeps_everything_wide_and_drops_by_rank_when_narrow() -> None:
    assert _headers(fit_table(COLS, ROWS, _console(WIDE))) == ["id", "name", "note", "when"]
    assert _headers(fit_table(COLS, ROWS, _console(60))) == ["id", "name", "note", "merged"]
    assert _headers(fit_table(COLS, ROWS, _console(30))) == ["id", "name", "merged"]  # the highest rank goes first
    assert _headers(fit_table(COLS, ROWS, _console(20))) == ["id", "merged"]  # never the unranked ones
    with pytest.raises(ValueError, match="3 cells for 5 columns"):
        fit_table(COLS, [["a", "b", "c"]], _console(80))


def test_short_values() -> None:
    assert [short_money(v) for v in (None, 0, 0.004, 0.1843, 12.5, 1204.4)] == [
        "-",
        "$0",
        "$0.004",
        "$0.18",
        "$12.50",
        "$1,204",
    ]
    assert [short_count(v) for v in (852, 1535, 12_345, 3_200_000)] == ["852", "1.5k", "12k", "3.2M"]
    assert short_model("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    assert short_model("meta-llama/Llama-3.1-8B-Instruct") == "Llama-3.1-8B-Instruct"
    assert short_model("org/" + "m" * 30) == "…" + "m" * 23
    assert pack(["aaaa", "bbbb", "cccc"], 11) == ["aaaa · bbbb", "cccc"]
    assert pack(["[bold]aaaa[/]", "bbbb"], 11) == ["[bold]aaaa[/] · bbbb"]  # markup takes no width


# ------------------------------------------------------------------------------------ the doc screens

SCREENS = {
    "plan": (DOCS / "estimator.md", PLAN_ARGS),
    "jobs": (DOCS / "cli.md", ["jobs"]),
}


def _screen(name: str, args: list[str]) -> str:
    """The block as the doc shows it: the command line, then what it printed at 80 columns."""
    out = "\n".join(_lines(_run(args, NARROW).stdout)).strip("\n")
    return f"```console\n$ COLUMNS={NARROW} vibeml {' '.join(_quote(a) for a in args)}\n{out}\n```"


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else f"'{arg}'"


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- screen: {name} -->\n)(.*?)(<!-- /screen -->)", re.S)


@pytest.mark.parametrize("name", sorted(SCREENS))
def test_the_doc_screens_are_the_real_output(name: str, seeded_jobs: list[JobRecord], frozen_clock: datetime) -> None:
    doc, args = SCREENS[name]
    text = doc.read_text(encoding="utf-8")
    match = _block(name).search(text)
    assert match, f"{doc.name} has no <!-- screen: {name} --> … <!-- /screen --> block"
    screen = _screen(name, args) + "\n"
    if os.environ.get("WRITE_DOCS") == "1":
        doc.write_text(text[: match.start(2)] + screen + text[match.end(2) :], encoding="utf-8")
        return
    assert match.group(2) == screen, f"{doc.name}'s {name} screen is not what the command prints; WRITE_DOCS=1"
    assert all(len(line) <= NARROW for line in screen.splitlines()[2:-1])  # the output, not the command line
