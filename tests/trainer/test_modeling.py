"""Trainer helpers in-process: model names, checkpoints, chat template fallback, stop flag, budget stop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from vibeml.exceptions import ModelNotFoundError
from vibeml.trainer.modeling import (
    CHATML_FALLBACK_TEMPLATE,
    ensure_chat_template_and_pad,
    find_latest_checkpoint,
    load_tokenizer,
    resolve_model_source,
)
from vibeml.trainer.run import StopFlag


@pytest.mark.needs_train
def test_model_source_accepts_ids_and_model_dirs(tiny_model_dir: Path) -> None:
    assert resolve_model_source("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert resolve_model_source("gpt2") == "gpt2"
    assert resolve_model_source(str(tiny_model_dir)) == str(tiny_model_dir)


@pytest.mark.parametrize(
    "name", ["", "/no/such/model", "./missing", "a/b/c", "$(reboot)", "x y", "org/model;ls", "`id`"]
)
def test_model_source_rejects_what_cannot_be_a_model(name: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_source(name)
    assert info.value.recovery_suggestion


def test_model_dir_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        resolve_model_source(str(tmp_path))


@pytest.mark.needs_train
@pytest.mark.usefixtures("offline_hub")
def test_hub_model_offline_is_a_clear_error() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        load_tokenizer("someone/not-cached-model")
    assert "offline" in info.value.message and info.value.recovery_suggestion


def test_latest_checkpoint_skips_incomplete(tmp_path: Path) -> None:
    assert find_latest_checkpoint(tmp_path / "none") is None
    for step, complete in ((5, True), (20, True), (100, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-20"


@pytest.mark.needs_train
def test_fallback_chat_template_and_pad(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    tokenizer.pad_token = None
    changed = ensure_chat_template_and_pad(tokenizer, model)
    assert changed == {"chat_template": True, "pad_token": True}
    assert tokenizer.chat_template == CHATML_FALLBACK_TEMPLATE
    assert tokenizer.pad_token == tokenizer.eos_token and model.config.pad_token_id == tokenizer.eos_token_id
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], tokenize=False
    )
    assert text == f"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>{tokenizer.eos_token}\n"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith(prompt)


def test_stop_flag_deadline() -> None:
    flag = StopFlag(deadline=time.monotonic() - 1)
    assert flag.check() == "max_runtime"
    flag.request("sigterm")  # the first reason sticks
    assert flag.reason == "max_runtime"
    assert StopFlag().check() is None


@pytest.mark.needs_train
@pytest.mark.slow
def test_max_runtime_checkpoints_and_stops(tmp_path: Path, tiny_model_dir: Path, cli: Any, dataset_file: Any) -> None:
    from vibeml.trainer.config import TrainerConfig
    from vibeml.trainer.events import DoneEvent, EventWriter, StepEvent, StoppedEvent, read_events
    from vibeml.trainer.run import train

    config = TrainerConfig.model_validate(
        cli.config(
            tmp_path,
            tiny_model_dir,
            dataset_file("alpaca", 32),
            max_runtime_seconds=3,
            torch_threads=2,
            hyperparameters={"max_steps": 100000, "save_steps": 100000},
        )
    )
    result = train(config, EventWriter(config.events_path))
    events = list(read_events(config.events_path))
    assert result["status"] == "stopped" and result["reason"] == "max_runtime"
    (stopped,) = [e for e in events if isinstance(e, StoppedEvent)]
    assert stopped.reason == "max_runtime" and not [e for e in events if isinstance(e, DoneEvent)]
    assert stopped.step is not None and 0 <= stopped.step < 100000
    if stopped.step > 0:  # training began before the budget ran out (the usual case)
        assert stopped.checkpoint is not None
        assert Path(stopped.checkpoint) == Path(config.checkpoint_dir) / f"checkpoint-{stopped.step}"
        assert Path(stopped.checkpoint).is_dir()
        assert [e for e in events if isinstance(e, StepEvent)][-1].step == stopped.step


@pytest.mark.needs_train
@pytest.mark.slow
def test_unknown_lora_target_modules_is_a_configuration_error(
    tmp_path: Path, tiny_model_dir: Path, cli: Any, dataset_file: Any
) -> None:
    from vibeml.exceptions import ConfigurationError
    from vibeml.trainer.config import TrainerConfig
    from vibeml.trainer.events import EventWriter
    from vibeml.trainer.run import train

    config = TrainerConfig.model_validate(
        cli.config(
            tmp_path,
            tiny_model_dir,
            dataset_file("text", 8),
            hyperparameters={"lora_target_modules": ["no_such_proj"]},
        )
    )
    with pytest.raises(ConfigurationError) as info:
        train(config, EventWriter(config.events_path))
    assert "no_such_proj" in info.value.message and info.value.recovery_suggestion
