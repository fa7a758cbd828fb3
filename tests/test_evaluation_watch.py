"""Evaluation and watching without training: the request's eval/report settings and their checks before a
job exists, the W&B key's path (secret env only), the curves, the PNG, the sparkline, `vibeml plot` and
`vibeml status` on a recorded job."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibeml.backends.vast.backend import VastBackend
from vibeml.cli.main import app
from vibeml.client import VibeML, build_request
from vibeml.config.credentials import CredentialManager
from vibeml.curves import COST_EVENT, curves_from_events, job_curves, record_cost_sample, sparkline
from vibeml.exceptions import ConfigurationError, CredentialError, DatasetError, ValidationError
from vibeml.jobs.progress import progress_from_events
from vibeml.jobs.store import utcnow
from vibeml.models import JobRecord, JobStatus, TrainingRequest
from vibeml.plot import render_plot
from vibeml.settings import Settings
from vibeml.trainer.evaluation import default_eval_steps, eval_sft_kwargs, eval_split_sizes, perplexity
from vibeml.trainer.events import DoneEvent, EvalEvent, EventWriter, StartEvent, StepEvent, read_events
from vibeml.workflows.registry import render_program

runner = CliRunner()
WANDB_KEY = "wk_" + "x" * 40


def _rows(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"What is {i} + 1?", "output": str(i + 1)} for i in range(n)]


def _write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def model_dir(demo_assets_dir: Path) -> str:
    return str(demo_assets_dir / "tiny-llama")


@pytest.fixture
def svc(vibeml_env: Path) -> VibeML:
    return VibeML(Settings.from_env())


def _no_jobs(svc: VibeML) -> None:
    assert svc.store.list_jobs() == []
    assert not svc.settings.jobs_dir.exists() or not any(svc.settings.jobs_dir.iterdir())


# ------------------------------------------------------------------------------------ the request


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"eval_split": 0.1, "eval_dataset": "d/eval"}, "not both"),
        ({"keep_best": True}, "keep_best needs an eval set"),
        ({"eval_steps": 5}, "eval_steps needs an eval set"),
        ({"eval_dataset_split": "test"}, "eval_dataset_split needs an eval set"),
        ({"eval_split": 0.0}, "greater than 0"),
        ({"eval_split": 1.0}, "less than 1"),
        ({"report_to": "comet"}, "report_to"),
    ],
)
def test_contradictory_or_ignored_eval_settings_are_refused(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_request(model="m/x", dataset="d/x", **fields)
    assert says in str(info.value)


def test_eval_settings_reach_the_trainer_config(tmp_path: Path) -> None:
    request = build_request(model="m/x", dataset="d/x", eval_split=0.2, eval_steps=3, keep_best=True)
    config = render_program(
        request, "j", output_dir="o", checkpoint_dir="c", events_path=str(tmp_path / "events.jsonl")
    ).config
    assert (config.eval_split, config.hyperparameters.eval_steps, config.keep_best) == (0.2, 3, True)
    kwargs = eval_sft_kwargs(config, planned_steps=30, has_eval=True)
    assert kwargs["eval_strategy"] == "steps" and kwargs["eval_steps"] == 3
    assert kwargs["load_best_model_at_end"] and kwargs["metric_for_best_model"] == "eval_loss"
    assert kwargs["save_steps"] == 3 and kwargs["greater_is_better"] is False
    assert eval_sft_kwargs(config, 30, has_eval=False) == {"report_to": "none"}


def test_split_sizes_default_steps_and_perplexity() -> None:
    assert eval_split_sizes(100, 0.1) == (90, 10)
    for rows, fraction in ((3, 0.1), (1, 0.5), (2, 0.9)):
        with pytest.raises(DatasetError, match="eval_split"):
            eval_split_sizes(rows, fraction, "data.jsonl")
    assert default_eval_steps(100) == 10 and default_eval_steps(5) == 1 and default_eval_steps(0) == 1
    assert perplexity(0.0) == 1.0 and perplexity(None) is None and perplexity(1e6) is None


# ------------------------------------------------------------- checked before a job or a paid call


def test_a_split_leaving_no_eval_row_is_refused_before_any_job(svc: VibeML, tmp_path: Path, model_dir: str) -> None:
    data = _write(tmp_path / "three.jsonl", _rows(3))
    request = svc.request_from(model_dir, data, eval_split=0.1)
    with pytest.raises(DatasetError, match="leaves 3 to train on and 0 to evaluate on") as info:
        svc.launch(request)
    assert info.value.recovery_suggestion and "eval-dataset" in info.value.recovery_suggestion
    _no_jobs(svc)


def test_the_eval_dataset_is_checked_like_the_training_data(svc: VibeML, tmp_path: Path, model_dir: str) -> None:
    data = _write(tmp_path / "train.jsonl", _rows(12))
    with pytest.raises(DatasetError, match="eval dataset: dataset file not found"):
        svc.prepare_launch(svc.request_from(model_dir, data, eval_dataset="./missing.jsonl"))
    bad = _write(tmp_path / "bad.jsonl", [{"colour": "red"}])
    with pytest.raises(DatasetError):
        svc.prepare_launch(svc.request_from(model_dir, data, eval_dataset=bad))
    text = _write(tmp_path / "text.jsonl", [{"text": f"row {i}"} for i in range(4)])
    with pytest.raises(DatasetError, match="eval dataset is text data but the training data is alpaca"):
        svc.prepare_launch(svc.request_from(model_dir, data, eval_dataset=text))
    _no_jobs(svc)
    held = tmp_path / "held.jsonl"
    _write(held, _rows(4))
    prep = svc.prepare_launch(svc.request_from(model_dir, data, eval_dataset=str(held)))
    assert prep.program.config.eval_dataset == str(held.resolve()) and prep.all_local


def test_a_local_eval_dataset_travels_to_a_rented_machine(tmp_path: Path) -> None:
    data, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    _write(data, _rows(4))
    _write(held, _rows(2))
    request = TrainingRequest(model="m/x", dataset=str(data), eval_dataset=str(held))
    config = render_program(request, "j", output_dir="o", checkpoint_dir="c", events_path="e").config
    inputs = VastBackend._inputs(config)
    assert ("eval_dataset", held, "inputs/eval_dataset.jsonl") in inputs
    payload = VastBackend._payload(
        render_program(request, "j", output_dir="o", checkpoint_dir="c", events_path="e"), inputs
    )
    assert payload.config["eval_dataset"] == "inputs/eval_dataset.jsonl" and "eval_dataset" in payload.relative_fields


def test_report_to_a_tracker_that_is_not_installed_is_refused(
    svc: VibeML, tmp_path: Path, model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vibeml.tracking

    monkeypatch.setattr(vibeml.tracking.importlib.util, "find_spec", lambda name, *a: None)
    data = _write(tmp_path / "train.jsonl", _rows(8))
    for tracker in ("tensorboard", "wandb", "mlflow"):
        with pytest.raises(ConfigurationError, match=f"needs the {tracker} package") as info:
            svc.launch(svc.request_from(model_dir, data, report_to=tracker))
        assert f"pip install {tracker}" in (info.value.recovery_suggestion or "")
    res = runner.invoke(app, ["launch", "--model", model_dir, "--dataset", data, "--report-to", "mlflow"])
    assert res.exit_code == ConfigurationError.exit_code and "pip install mlflow" in res.output
    _no_jobs(svc)


def test_report_to_on_a_paid_backend_is_refused_before_any_paid_call(
    svc: VibeML, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAST_API_KEY", "vk_test_never_used")
    monkeypatch.setenv("VIBEML_VAST_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail
    svc = VibeML(Settings.from_env())
    data = _write(tmp_path / "train.jsonl", _rows(8))
    request = svc.request_from("Qwen/Qwen2.5-0.5B", data, backend="vast", max_cost=5, report_to="tensorboard")
    with pytest.raises(ConfigurationError, match="cannot run on the vast backend"):
        svc.prepare_launch(request)
    _no_jobs(svc)


def test_the_wandb_key_reaches_the_trainer_as_a_secret_env_var_only(
    svc: VibeML, tmp_path: Path, model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vibeml.tracking

    real = vibeml.tracking.importlib.util.find_spec
    monkeypatch.setattr(
        vibeml.tracking.importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else real(name, *a)
    )
    data = _write(tmp_path / "train.jsonl", _rows(8))
    request = svc.request_from(model_dir, data, report_to="wandb")
    with pytest.raises(CredentialError, match="needs a Weights & Biases API key"):
        svc.prepare_launch(request)
    CredentialManager.from_settings(svc.settings).store_credential("wandb", "api_key", WANDB_KEY)
    prep = svc.prepare_launch(request)
    assert prep.program.secret_env()["WANDB_API_KEY"] == WANDB_KEY
    assert prep.program.config.report_to == "wandb"
    for text in (prep.program.config_json(), prep.model_dump_json(), repr(prep), json.dumps(prep.program.env)):
        assert WANDB_KEY not in text


# ----------------------------------------------------------------------------------------- curves


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    w = EventWriter(path, echo=False)
    w.emit(StartEvent(model="m", dataset="d", method="lora", device="cpu", max_steps=4))
    for step, loss, lr in ((1, 4.0, 1e-4), (2, 3.0, 8e-5), (3, 2.5, 6e-5), (4, 2.0, 4e-5)):
        w.emit(StepEvent(step=step, max_steps=4, loss=loss, learning_rate=lr))
        if step % 2 == 0:
            w.emit(EvalEvent(step=step, loss=loss + 0.5 - step * 0.01, perplexity=perplexity(loss + 0.5)))
    w.emit(DoneEvent(output_dir="/o", step=4, final_eval_loss=2.46, best_eval_loss=2.46, best_checkpoint="/c/4"))
    return path


def test_progress_and_curves_carry_the_eval_loss(tmp_path: Path) -> None:

    events = list(read_events(_events(tmp_path)))
    p = progress_from_events(events, alive=False)
    assert p.status is JobStatus.COMPLETED and p.eval_step == 4 and p.eval_loss == pytest.approx(2.46)
    assert p.best_eval_loss == pytest.approx(2.46) and p.best_checkpoint == "/c/4"
    assert p.eval_perplexity == pytest.approx(perplexity(2.5))
    c = curves_from_events(events)
    assert [x for x, _ in c.train_loss] == [1, 2, 3, 4] and [x for x, _ in c.eval_loss] == [2, 4]
    assert c.learning_rate[0] == (1.0, 1e-4)


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert len(sparkline([float(i) for i in range(500)], width=40)) == 40
    assert len(set(sparkline([2.0, 2.0, 2.0]))) == 1


def _decode_png(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[y * (width * 3 + 1) : (y + 1) * (width * 3 + 1)] for y in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, b"".join(r[1:] for r in rows)


def _colours(rgb: bytes) -> set[tuple[int, int, int]]:
    return {(rgb[i], rgb[i + 1], rgb[i + 2]) for i in range(0, len(rgb), 3)}


def test_the_png_draws_every_curve_and_the_cap(tmp_path: Path) -> None:
    from vibeml.plot import _BLUE, _GREEN, _ORANGE, _RED

    curves = curves_from_events(read_events(_events(tmp_path)))
    width, height, rgb = _decode_png(render_plot(curves, "vml-test"))
    assert (width, height) == (960, 640) and {_BLUE, _ORANGE, _GREEN} <= _colours(rgb) and _RED not in _colours(rgb)
    curves.cost, curves.cap = [(0.0, 0.0), (5.0, 0.5)], 2.0
    width, height, rgb = _decode_png(render_plot(curves, "vml-test"))
    assert height == 940 and _RED in _colours(rgb)
    no_eval = curves_from_events(e for e in read_events(_events(tmp_path)) if not isinstance(e, EvalEvent))
    assert _ORANGE not in _colours(_decode_png(render_plot(no_eval, "x"))[2])


def _record(svc: VibeML, backend: str = "local", max_cost: float | None = None) -> JobRecord:
    now = utcnow() - timedelta(minutes=10)
    record = JobRecord(
        job_id="vml-feed0001",
        status=JobStatus.COMPLETED,
        backend=backend,
        created_at=now,
        updated_at=now,
        request=TrainingRequest(model="m/x", dataset="d/x", eval_split=0.2, max_cost=max_cost),
    )
    svc.store.create(record)
    svc.job_dir(record.job_id).mkdir(parents=True)
    return record


def test_cost_samples_are_recorded_in_steps_and_drawn_against_the_cap(svc: VibeML) -> None:
    record = _record(svc, backend="vast", max_cost=1.0)
    assert record_cost_sample(svc.store, record, 0.002) is False  # below a step (cap / 200)
    assert record_cost_sample(svc.store, record, 0.006) is True
    assert record_cost_sample(svc.store, record, 0.008) is False
    assert record_cost_sample(svc.store, record, 0.02) is True
    curves = job_curves(record, svc.job_dir(record.job_id), svc.store.events(record.job_id))
    assert [c for _, c in curves.cost] == [0.0, 0.006, 0.02] and curves.cap == 1.0
    assert all(5 <= m <= 11 for m, _ in curves.cost[1:])
    kinds = [e["kind"] for e in svc.store.events(record.job_id)]
    assert kinds.count(COST_EVENT) == 2


def test_plot_and_status_through_the_cli(svc: VibeML, tmp_path: Path) -> None:
    record = _record(svc)
    job_dir = svc.job_dir(record.job_id)
    (job_dir / "events.jsonl").write_bytes(_events(tmp_path).read_bytes())
    progress = progress_from_events(read_events(job_dir / "events.jsonl"))
    svc.store.update(record.job_id, progress=progress)

    res = runner.invoke(app, ["plot", record.job_id, "--json"])
    assert res.exit_code == 0, res.output
    path = Path(json.loads(res.stdout)["path"])
    assert path == job_dir / "curves.png" and _decode_png(path.read_bytes())[:2] == (960, 640)
    out = tmp_path / "mine.png"
    assert runner.invoke(app, ["plot", record.job_id, "-o", str(out)]).exit_code == 0 and out.exists()

    res = runner.invoke(app, ["status", record.job_id])
    assert res.exit_code == 0, res.output
    assert "eval loss" in res.stdout and "2.4600" in res.stdout and "at step 4" in res.stdout
    assert "loss curve" in res.stdout and "█" in res.stdout and "4.000 → 2.000" in res.stdout
    assert "best checkpoint" in res.stdout
    status = json.loads(runner.invoke(app, ["status", record.job_id, "--json"]).stdout)
    assert status["progress"]["eval_loss"] == pytest.approx(2.46)
    jobs = runner.invoke(app, ["jobs"])
    assert jobs.exit_code == 0 and "eval" in jobs.stdout and "2.46" in jobs.stdout


def test_plot_of_an_unknown_job_is_a_clear_error(svc: VibeML) -> None:
    res = runner.invoke(app, ["plot", "vml-nothere"])
    assert res.exit_code != 0 and "Traceback" not in res.output
