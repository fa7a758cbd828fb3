"""The trainer as a real process: ``python -m vibeml.trainer --config run.json`` on the tiny model.

Independent runs start together (one torch thread each) so the whole file stays quick on 2 cores.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from vibeml.trainer.events import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    SampleEvent,
    ScoreEvent,
    StartEvent,
    StepEvent,
    StoppedEvent,
)

STEP_FIELDS = {"step", "max_steps", "epoch", "loss", "learning_rate", "tokens_per_s", "eta_seconds", "elapsed_seconds"}
START_FIELDS = {"model", "dataset", "method", "num_examples", "max_steps", "device", "resumed_from"}
DONE_FIELDS = {"output_dir", "step", "first_loss", "final_loss", "elapsed_seconds"}


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, cli: Any, format_rows: Any, write_jsonl: Any
) -> dict[str, Any]:
    """Start every independent scenario at once, then collect them all."""
    root = tmp_path_factory.mktemp("runs")
    data = {
        fmt: write_jsonl(root / f"{fmt}.jsonl", format_rows(fmt, 40))
        for fmt in ("alpaca", "messages", "sharegpt", "prompt_completion", "text")
    }
    cfg = cli.config
    scenarios = {
        "alpaca": cfg(
            root / "alpaca",
            tiny_model_dir,
            data["alpaca"],
            hyperparameters={"max_steps": 4, "save_steps": 2},
            sample_prompts=["What is 2 + 3?"],
            sample_max_new_tokens=4,
            score_examples=[
                {"prompt": f"How many words are in: {' '.join(['cat'] * n)}?", "answer": str(n)} for n in (1, 2, 3)
            ],
        ),
        "messages": cfg(root / "messages", tiny_model_dir, data["messages"], save_merged=True),
        # runs until SIGTERM; test_sigterm_checkpoints_then_resume_continues resumes it
        "sharegpt": cfg(
            root / "sharegpt", tiny_model_dir, data["sharegpt"], hyperparameters={"max_steps": 500, "save_steps": 1000}
        ),
        "prompt_completion": cfg(root / "pc", tiny_model_dir, data["prompt_completion"]),
        "text": cfg(
            root / "text", tiny_model_dir, data["text"], method="full", hyperparameters={"learning_rate": 1e-4}
        ),
    }
    started = {name: cli.start(Path(c["output_dir"]).parent, c) for name, c in scenarios.items()}
    victim = started["sharegpt"]
    reached = cli.wait_for(
        lambda: (
            victim.proc.poll() is not None or any(isinstance(e, StepEvent) and e.step >= 2 for e in victim.events())
        ),
        200,
    )
    victim.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    results = {name: proc.wait(timeout=280) for name, proc in started.items()}
    results["sigterm"] = {
        "reached": reached,
        "exit_after_s": time.monotonic() - signalled,
        "config": scenarios["sharegpt"],
    }
    return results


def _kinds(run: Any) -> list[str]:
    return [e.event for e in run.events]


@pytest.mark.needs_train
@pytest.mark.slow
def test_alpaca_event_stream(runs: dict[str, Any]) -> None:
    run = runs["alpaca"]
    assert run.rc == 0, run.describe()
    assert _kinds(run) == [
        "start",
        "sample",
        "score",
        "step",
        "step",
        "checkpoint",
        "step",
        "step",
        "checkpoint",
        "sample",
        "score",
        "done",
    ], run.describe()
    start = run.of(StartEvent)[0]
    assert {f for f in START_FIELDS if getattr(start, f) is None} == {"resumed_from"}  # the rest filled in
    assert start.method == "lora" and start.device == "cpu" and start.max_steps == 4
    assert start.num_examples == 40 and start.resumed_from is None
    assert start.dataset_format == "alpaca"
    steps = run.of(StepEvent)
    assert [s.step for s in steps] == [1, 2, 3, 4]
    for s in steps:
        assert all(getattr(s, f) is not None for f in STEP_FIELDS), s
        assert s.max_steps == 4 and math.isfinite(s.loss) and s.tokens_per_s > 0
        assert s.eta_seconds >= 0 and s.elapsed_seconds > 0
    ckpts = run.of(CheckpointEvent)
    assert [c.step for c in ckpts] == [2, 4]
    for c in ckpts:
        assert Path(c.path).is_dir() and (Path(c.path) / "adapter_model.safetensors").is_file()
    before, after = run.of(SampleEvent)
    assert before.phase == "before" and after.phase == "after"
    assert before.prompt == "What is 2 + 3?" and isinstance(after.completion, str)
    scored = run.of(ScoreEvent)
    assert [(s.phase, s.total) for s in scored] == [("before", 3), ("after", 3)]
    assert all(0 <= s.correct <= 3 and s.seconds is not None for s in scored)
    assert "held-out exact match before training:" in run.stdout
    done = run.of(DoneEvent)[0]
    assert all(getattr(done, f) is not None for f in DONE_FIELDS), done
    assert done.step == 4
    assert done.first_loss == pytest.approx(steps[0].loss)
    assert done.final_loss == pytest.approx(steps[-1].loss)
    assert "Traceback" not in run.stderr
    assert "[vibeml] step 4/4" in run.stdout


@pytest.mark.needs_train
@pytest.mark.slow
def test_adapter_loads_with_peft_and_generates(runs: dict[str, Any], tiny_model_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(runs["alpaca"].of(DoneEvent)[0].output_dir)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 1?"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        generated = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > enc["input_ids"].shape[1]


@pytest.mark.needs_train
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "prompt_completion", "text"])
def test_each_format_trains(runs: dict[str, Any], fmt: str) -> None:
    run = runs[fmt]
    assert run.rc == 0, run.describe()
    assert _kinds(run)[0] == "start"
    assert _kinds(run)[-1] == ("stopped" if fmt == "sharegpt" else "done")
    assert run.of(StartEvent)[0].dataset_format == fmt
    steps = [s.step for s in run.of(StepEvent)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= (2 if fmt == "sharegpt" else 3)
    assert all(math.isfinite(s.loss) for s in run.of(StepEvent))


@pytest.mark.needs_train
@pytest.mark.slow
def test_full_finetune_saves_whole_model(runs: dict[str, Any]) -> None:
    run = runs["text"]
    start = run.of(StartEvent)[0]
    assert start.method == "full" and start.trainable_params == start.total_params
    out = Path(run.of(DoneEvent)[0].output_dir)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    assert (out / "tokenizer.json").is_file()


@pytest.mark.needs_train
@pytest.mark.slow
def test_save_merged_writes_plain_weights(runs: dict[str, Any]) -> None:
    done = runs["messages"].of(DoneEvent)[0]
    merged = Path(done.merged_dir)
    assert merged == Path(done.output_dir) / "merged"
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    assert not (merged / "adapter_config.json").exists()


@pytest.mark.needs_train
@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_continues(runs: dict[str, Any], cli: Any) -> None:
    first, info = runs["sharegpt"], runs["sigterm"]
    assert info["reached"], first.describe()
    assert info["exit_after_s"] < 60
    assert first.rc == 0, first.describe()
    stopped = first.of(StoppedEvent)
    assert len(stopped) == 1 and not first.of(DoneEvent)
    step = stopped[0].step
    assert stopped[0].reason == "sigterm" and 2 <= step < 500
    config = info["config"]
    checkpoint = Path(stopped[0].checkpoint)
    assert checkpoint == Path(config["checkpoint_dir"]) / f"checkpoint-{step}" and checkpoint.is_dir()
    assert first.of(CheckpointEvent)[-1].step == step
    assert "SIGTERM received" in first.stdout

    config["hyperparameters"]["max_steps"] = step + 2
    config["events_path"] = str(Path(config["events_path"]).with_name("events-resumed.jsonl"))
    second = cli.run(Path(config["output_dir"]).parent, config)
    assert second.rc == 0, second.describe()
    assert second.of(StartEvent)[0].resumed_from == str(checkpoint)
    assert [s.step for s in second.of(StepEvent)] == [step + 1, step + 2]
    assert second.of(DoneEvent)[0].step == step + 2


# ---------------------------------------------------------------------------------- failing configs


def test_corrupt_config_exits_2_without_traceback(tmp_path: Path, cli: Any) -> None:
    run = cli.run(tmp_path, '{"model": "x", "dataset": ', timeout=60)
    assert run.rc == 2
    assert "not valid JSON" in run.stderr and "Traceback" not in run.stderr
    assert run.events == []


def test_invalid_config_writes_error_event(tmp_path: Path, cli: Any) -> None:
    raw = (
        '{"dataset": "d.jsonl", "output_dir": "o", "checkpoint_dir": "c", "method": "magic", '
        f'"events_path": "{tmp_path / "events.jsonl"}"}}'
    )
    run = cli.run(tmp_path, raw, timeout=60)
    assert run.rc == 2, run.describe()
    (error,) = run.of(ErrorEvent)
    assert error.error_type == "ConfigurationError"
    assert "model" in error.message and "method" in error.message
    assert error.recovery_suggestion


@pytest.mark.needs_train
def test_missing_dataset_is_an_error_event(tmp_path: Path, cli: Any, tiny_model_dir: Path) -> None:
    run = cli.run(tmp_path, cli.config(tmp_path, tiny_model_dir, tmp_path / "missing.jsonl"), timeout=120)
    assert run.rc == 1, run.describe()
    (error,) = run.of(ErrorEvent)
    assert error.error_type == "DatasetError" and "not found" in error.message
    assert error.recovery_suggestion and "Traceback" not in run.stderr


@pytest.mark.needs_train
def test_user_strings_never_execute(tmp_path: Path, cli: Any, tiny_model_dir: Path) -> None:
    canary = tmp_path / "pwned"
    payloads = [
        f'"; touch {canary}; echo "',
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"__import__('os').system('touch {canary}')",
        f"{{{{ cycler.__init__.__globals__.os.popen('touch {canary}').read() }}}}",
        f"model'\nimport os; os.system('touch {canary}')",
    ]
    started = []
    for i, payload in enumerate(payloads):
        for field in ("model", "dataset"):
            work = tmp_path / f"{field}-{i}"
            model = payload if field == "model" else tiny_model_dir
            dataset = payload if field == "dataset" else tmp_path / "unused.jsonl"
            started.append((field, cli.start(work, cli.config(work, model, dataset))))
    for field, proc in started:
        run = proc.wait(timeout=120)
        assert run.rc == 1, run.describe()
        (error,) = run.of(ErrorEvent)
        assert error.error_type == ("ModelNotFoundError" if field == "model" else "DatasetError")
        assert "not found" in error.message
        assert "Traceback" not in run.stderr
    assert not canary.exists()
