"""QLoRA and Unsloth in the trainer: clear ResourceErrors where they cannot run, never a crash; packing and the
speed settings reach the Trainer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from vibeml.exceptions import ResourceError
from vibeml.trainer.config import TrainerConfig
from vibeml.trainer.engine import Loaded
from vibeml.trainer.events import DoneEvent, ErrorEvent, StartEvent, StepEvent
from vibeml.trainer.modeling import DeviceSettings, check_bitsandbytes, load_unsloth
from vibeml.trainer.speed import CheckpointingChoice, SpeedSettings

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None


def test_qlora_without_bitsandbytes_is_a_resource_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", None)
    with pytest.raises(ResourceError) as err:
        check_bitsandbytes("cpu")
    assert "bitsandbytes" in err.value.message and "trl-lora" in (err.value.recovery_suggestion or "")


def test_unsloth_needs_cuda_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs: dict[str, Any] = {
        "method": "lora",
        "max_seq_length": 64,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": "all-linear",
        "gradient_checkpointing": True,
        "seed": 1,
    }
    with pytest.raises(ResourceError, match="NVIDIA GPU") as err:
        load_unsloth("m", device="cpu", **kwargs)
    assert "trl-lora" in (err.value.recovery_suggestion or "")
    monkeypatch.setitem(sys.modules, "unsloth", None)
    with pytest.raises(ResourceError, match="unsloth package"):
        load_unsloth("m", device="cuda", **kwargs)


@pytest.mark.needs_train
def test_sft_config_gets_the_speed_settings() -> None:
    from vibeml.trainer.run import _peft_config, _sft_config

    cfg = TrainerConfig(model="m", dataset="d", output_dir="o", checkpoint_dir="c", events_path="e")
    cpu = DeviceSettings("cpu", "float32", bf16=False, fp16=False)
    loaded = Loaded(
        None,
        None,
        CheckpointingChoice(True, 2, "test"),
        SpeedSettings("sdpa", "adamw_torch", False),
        peft_applied=False,
    )
    args = _sft_config(cfg, cpu, loaded)
    assert args.activation_checkpointing is True and args.optim == "adamw_torch"
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False, "every_n_layers": 2}
    assert _peft_config(cfg, loaded) is not None
    unsloth = cfg.model_copy(update={"engine": "unsloth"})
    applied = Loaded(None, None, CheckpointingChoice(True, 1, "unsloth"), SpeedSettings("sdpa", None, False), True)
    assert _sft_config(unsloth, cpu, applied).activation_checkpointing is False  # Unsloth checkpoints itself
    assert _peft_config(unsloth, applied) is None  # its adapters are already there


@pytest.mark.needs_train
def test_sft_config_on_transformers_without_activation_checkpointing(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers renamed ``gradient_checkpointing`` to ``activation_checkpointing`` (which adds partial,
    every-n-layers checkpointing) after 5.20. Python 3.10's lock holds transformers 5.20.2 / trl 1.14.2: there the
    trainer passes the old name and checkpoints every layer, rather than failing on an unknown field."""
    import dataclasses

    import trl

    from vibeml.trainer.run import _sft_config

    @dataclasses.dataclass
    class OldSFTConfig:  # the fields of trl 1.14.2's SFTConfig that matter here
        output_dir: str = ""
        optim: str = "adamw_torch"
        gradient_checkpointing: bool = False
        gradient_checkpointing_kwargs: dict[str, Any] | None = None
        warmup_ratio: float = 0.0

    monkeypatch.setattr(trl, "SFTConfig", OldSFTConfig)
    cfg = TrainerConfig(model="m", dataset="d", output_dir="o", checkpoint_dir="c", events_path="e")
    cpu = DeviceSettings("cpu", "float32", bf16=False, fp16=False)
    loaded = Loaded(
        None,
        None,
        CheckpointingChoice(True, 2, "test"),
        SpeedSettings("sdpa", "adamw_torch", False),
        peft_applied=False,
    )
    args = _sft_config(cfg, cpu, loaded)
    assert isinstance(args, OldSFTConfig) and args.gradient_checkpointing is True
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}  # no every_n_layers there


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, cli: Any, format_rows: Any, write_jsonl: Any
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("methods")
    data = write_jsonl(root / "alpaca.jsonl", format_rows("alpaca", 40))
    scenarios = {
        "qlora": cli.config(root / "qlora", tiny_model_dir, data, method="qlora"),
        "unsloth": cli.config(root / "unsloth", tiny_model_dir, data, engine="unsloth"),
        "packed": cli.config(
            root / "packed",
            tiny_model_dir,
            data,
            hyperparameters={"packing": True, "max_steps": 3},
            column_mapping={"input": "context"},
        ),
    }
    started = {name: cli.start(Path(c["output_dir"]).parent, c) for name, c in scenarios.items()}
    return {name: proc.wait(timeout=280) for name, proc in started.items()}


@pytest.mark.needs_train
@pytest.mark.slow
def test_qlora_in_the_trainer(runs: dict[str, Any]) -> None:
    run = runs["qlora"]
    if HAS_BNB:
        assert run.rc == 0, run.describe()
        assert run.of(StartEvent)[0].method == "qlora" and run.of(DoneEvent)
        return
    assert run.rc == 1, run.describe()
    error = run.of(ErrorEvent)[0]
    assert error.error_type == "ResourceError" and "bitsandbytes" in error.message
    assert "Traceback" not in run.stderr


@pytest.mark.needs_train
@pytest.mark.slow
def test_unsloth_on_a_cpu_is_a_clear_error(runs: dict[str, Any]) -> None:
    run = runs["unsloth"]
    assert run.rc == 1, run.describe()
    error = run.of(ErrorEvent)[0]
    assert error.error_type == "ResourceError" and "NVIDIA GPU" in error.message
    assert error.recovery_suggestion and "Traceback" not in run.stderr


@pytest.mark.needs_train
@pytest.mark.slow
def test_packing_and_the_start_event(runs: dict[str, Any]) -> None:
    run = runs["packed"]
    assert run.rc == 0, run.describe()
    start = run.of(StartEvent)[0]
    assert start.packing is True and start.engine == "transformers"
    assert start.attn_implementation == "sdpa" and start.gradient_checkpointing is False
    assert start.use_liger_kernel is False and start.dataset_format == "alpaca"
    assert [s.step for s in run.of(StepEvent)] == [1, 2, 3]
