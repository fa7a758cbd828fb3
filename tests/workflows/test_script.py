"""Standalone scripts: they compile, carry their settings as data, need no VibeML, and call the current APIs.

The Unsloth script cannot run here (no CUDA, no unsloth); its calls are checked by inspection against the
installed TRL/peft/transformers signatures and Unsloth's documented keyword arguments.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vibeml.exceptions import ConfigurationError, ValidationError
from vibeml.trainer.config import TrainerConfig
from vibeml.trainer.events import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    TrainerEvent,
    read_events,
)
from vibeml.workflows.registry import get_workflow
from vibeml.workflows.script import ScriptGenerator, decode_script_config, encode_config

WORKFLOWS = ("trl-lora", "qlora", "full", "unsloth")
SRC = Path(__file__).resolve().parents[2] / "src"

#: Keyword arguments of unsloth 2026.10.x (unsloth/models/loader.py FastLanguageModel.from_pretrained and
#: unsloth/models/llama.py FastLlamaModel.get_peft_model), as published in its source and docs.
UNSLOTH_FROM_PRETRAINED = {
    "model_name",
    "max_seq_length",
    "dtype",
    "load_in_4bit",
    "load_in_8bit",
    "load_in_16bit",
    "full_finetuning",
    "token",
    "device_map",
    "rope_scaling",
    "fix_tokenizer",
    "trust_remote_code",
    "use_gradient_checkpointing",
    "resize_model_vocab",
    "revision",
    "use_exact_model_name",
    "offload_embedding",
    "float32_mixed_precision",
    "fast_inference",
    "gpu_memory_utilization",
    "float8_kv_cache",
    "random_state",
    "max_lora_rank",
    "disable_log_stats",
    "qat_scheme",
    "load_in_fp8",
    "unsloth_tiled_mlp",
    "text_only",
}
UNSLOTH_GET_PEFT_MODEL = {
    "r",
    "target_modules",
    "lora_alpha",
    "lora_dropout",
    "bias",
    "layers_to_transform",
    "layers_pattern",
    "finetune_last_n_layers",
    "use_gradient_checkpointing",
    "random_state",
    "max_seq_length",
    "use_rslora",
    "modules_to_save",
    "init_lora_weights",
    "loftq_config",
    "temporary_location",
    "qat_scheme",
    "target_parameters",
    "ensure_weight_tying",
}


@pytest.fixture(scope="module")
def scripts() -> dict[str, str]:
    gen = ScriptGenerator()
    return {
        w: gen.generate_script(
            w,
            "Qwen/Qwen2.5-0.5B",
            "data.jsonl",
            max_steps=5,
            sample_prompts=["Hello?"],
            **({} if get_workflow(w).method == "full" else {"lora_r": 8}),  # full refuses LoRA settings
        )
        for w in WORKFLOWS
    }


def calls(tree: ast.AST, attr: str) -> list[ast.Call]:
    """Calls whose function is ``attr`` or ``<something>.attr``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if name == attr:
                found.append(node)
    return found


def keywords(call: ast.Call) -> set[str]:
    return {k.arg for k in call.keywords if k.arg is not None}


def function(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_every_workflow_compiles_and_carries_its_config(scripts: dict[str, str], workflow: str) -> None:
    text = scripts[workflow]
    compile(text, "train.py", "exec")
    cfg = decode_script_config(text)
    TrainerConfig.model_validate(cfg)
    assert cfg["model"] == "Qwen/Qwen2.5-0.5B" and cfg["hyperparameters"]["max_steps"] == 5
    assert cfg["method"] == {"qlora": "qlora", "full": "full"}.get(workflow, "lora")
    assert cfg["engine"] == ("unsloth" if workflow == "unsloth" else "transformers")
    # the only difference between two workflows' scripts is the CONFIG block
    strip = [ln for ln in text.splitlines() if not ln.startswith('    "') and "CONFIG_B64 = (" not in ln]
    other = [ln for ln in scripts["trl-lora"].splitlines() if not ln.startswith('    "') and "CONFIG_B64 = (" not in ln]
    assert strip == other


def test_scripts_need_no_vibeml(scripts: dict[str, str]) -> None:
    tree = ast.parse(scripts["trl-lora"])
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if (mod or "").startswith("vibeml"):
                parent = next(p for p in ast.walk(tree) if isinstance(p, ast.Try) and node in p.body)
                assert any(isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in parent.handlers)


def test_print_config_runs_without_vibeml(scripts: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(scripts["qlora"], encoding="utf-8")
    # sys.modules["vibeml"] = None makes every `import vibeml...` fail, as on a machine without VibeML
    runner = (
        "import runpy, sys; sys.modules['vibeml'] = None; sys.argv = [sys.argv[1], '--print-config']; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", runner, str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == decode_script_config(scripts["qlora"])
    assert "torch" not in out.stderr


def _load(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A generated script as a module (its definitions only: main() runs under __main__ alone)."""
    import importlib.util

    path = tmp_path / "generated_train.py"
    path.write_text(script, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("generated_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "generated_train", module)
    spec.loader.exec_module(module)
    return vars(module)


def test_the_inlined_formats_match_the_trainers(
    scripts: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = _load(scripts["full"], tmp_path, monkeypatch)
    rows = [{"question": "2+2?", "answer": "4"}]
    from vibeml.trainer import formats

    mapped = [namespace["rename_row"](r, {"question": "instruction", "answer": "output"}) for r in rows]
    assert namespace["detect_format"](mapped) == formats.detect_format(mapped) == "alpaca"
    assert namespace["normalise_row"](mapped[0], "alpaca") == formats.normalise_row(mapped[0], "alpaca")
    with pytest.raises(Exception) as err:
        namespace["detect_format"](rows)
    assert "columns" in str(err.value)


def test_the_script_writes_the_trainers_events(
    scripts: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script's own copy of the event models (inlined, not imported) writes lines VibeML's reader parses
    into the same events: one contract, whichever program wrote the stream."""
    namespace = _load(scripts["trl-lora"], tmp_path, monkeypatch)
    assert namespace["StepEvent"] is not StepEvent and namespace["StepEvent"].__module__ == "generated_train"
    wanted: list[TrainerEvent] = [
        StartEvent(model="m", dataset="d", method="lora", device="cpu", max_steps=8, num_examples=3),
        StepEvent(step=1, max_steps=8, loss=2.5, learning_rate=1e-3, elapsed_seconds=0.5),
        CheckpointEvent(step=1, path="out/checkpoints/checkpoint-1"),
        SampleEvent(phase="after", prompt="Hello? \u2028", completion="hi"),
        DoneEvent(output_dir="out", step=1, first_loss=2.5, final_loss=2.5, elapsed_seconds=1.0),
        ErrorEvent(message="no usable rows", error_type="SystemExit"),
    ]
    writer = namespace["EventWriter"](tmp_path / "events.jsonl", echo=False)
    for event in wanted:
        writer.emit(namespace[type(event).__name__](**event.model_dump()))
    assert list(read_events(tmp_path / "events.jsonl")) == wanted
    with pytest.raises(ValueError):  # the script's copy refuses what the trainer's refuses
        namespace["StepEvent"](step=True)


@pytest.mark.needs_train
def test_trl_calls_match_the_installed_signatures(scripts: dict[str, str]) -> None:
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    tree = ast.parse(scripts["trl-lora"])
    sft_fields = {f.name for f in dataclasses.fields(SFTConfig)}
    kwargs_dict = next(n for n in ast.walk(function(tree, "sft_config")) if isinstance(n, ast.Dict))
    keys = {k.value for k in kwargs_dict.keys if isinstance(k, ast.Constant)}
    assert keys - sft_fields == set(), keys - sft_fields
    trainer_params = set(inspect.signature(SFTTrainer.__init__).parameters)
    for call in calls(tree, "SFTTrainer"):
        assert keywords(call) <= trainer_params
    lora_fields = {f.name for f in dataclasses.fields(LoraConfig)}
    for call in calls(tree, "LoraConfig"):
        assert keywords(call) <= lora_fields
    bnb = set(inspect.signature(BitsAndBytesConfig.__init__).parameters)
    for call in calls(tree, "BitsAndBytesConfig"):
        assert keywords(call) <= bnb and keywords(call)
    kbit = set(inspect.signature(prepare_model_for_kbit_training).parameters)
    for call in calls(tree, "prepare_model_for_kbit_training"):
        assert keywords(call) <= kbit


@pytest.mark.parametrize("source", ["script", "trainer"])
def test_unsloth_calls_match_its_published_api(scripts: dict[str, str], source: str) -> None:
    text = scripts["unsloth"] if source == "script" else (SRC / "vibeml/trainer/modeling.py").read_text()
    tree = ast.parse(text)
    loads = calls(tree, "from_pretrained")
    unsloth_loads = [
        c
        for c in loads
        if isinstance(c.func, ast.Attribute)
        and isinstance(c.func.value, ast.Name)
        and c.func.value.id == "FastLanguageModel"
    ]
    peft = calls(tree, "get_peft_model")
    assert len(unsloth_loads) == 1 and len(peft) == 1
    assert keywords(unsloth_loads[0]) <= UNSLOTH_FROM_PRETRAINED
    assert {"model_name", "max_seq_length", "load_in_4bit", "trust_remote_code"} <= keywords(unsloth_loads[0])
    assert keywords(peft[0]) <= UNSLOTH_GET_PEFT_MODEL
    assert {"r", "target_modules", "lora_alpha", "use_gradient_checkpointing"} <= keywords(peft[0])
    trust = next(k for k in unsloth_loads[0].keywords if k.arg == "trust_remote_code")
    assert isinstance(trust.value, ast.Constant) and trust.value.value is False
    assert not any(isinstance(k.value, ast.Constant) and k.value.value == "all-linear" for k in peft[0].keywords)


def test_unsloth_is_imported_before_trl(scripts: dict[str, str]) -> None:
    tree = ast.parse(scripts["unsloth"])
    main = function(tree, "main")
    load_line = next(c.lineno for c in calls(main, "load_model"))
    trl_line = next(n.lineno for n in ast.walk(main) if isinstance(n, ast.ImportFrom) and n.module == "trl")
    assert load_line < trl_line
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any((getattr(n, "module", None) or "").startswith(("trl", "transformers", "torch")) for n in top_level)


def test_settings_are_validated(tmp_path: Path) -> None:
    gen = ScriptGenerator()
    with pytest.raises(ConfigurationError, match="unknown workflow"):
        gen.generate_script("nope", "m/x", "d.jsonl")
    with pytest.raises(ConfigurationError, match="unknown script settings"):
        gen.generate_script("trl-lora", "m/x", "d.jsonl", learning_rat=1e-4)
    with pytest.raises(ValidationError, match="learning_rate"):
        gen.generate_script("trl-lora", "m/x", "d.jsonl", learning_rate=-1)
    with pytest.raises(ValidationError, match="model"):
        gen.generate_script("trl-lora", "m/x\n", "d.jsonl")
    cfg = decode_script_config(
        gen.generate_script(
            "qlora", "m/x", "d.jsonl", output_dir="runs/a", column_mapping={"q": "instruction"}, device="cpu"
        )
    )
    assert cfg["output_dir"] == "runs/a" and cfg["checkpoint_dir"] == "runs/a/checkpoints"
    assert cfg["column_mapping"] == {"q": "instruction"} and cfg["device"] == "cpu"
    path = gen.write_script(tmp_path / "sub" / "train.py", "print(1)\n")
    assert path.read_text() == "print(1)\n" and path.stat().st_mode & 0o100
    with pytest.raises(ConfigurationError, match="already exists"):
        gen.write_script(path, "x")
    gen.write_script(path, "print(2)\n", overwrite=True)
    assert path.read_text() == "print(2)\n"


def test_encoding_is_plain_base64() -> None:
    encoded = encode_config({"s": "\x00\u202e\"'\\\n"})
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
