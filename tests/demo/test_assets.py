"""The offline demo assets: deterministic data, a working tokenizer and model, safe concurrent builds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vibeml.demo import DEMO_SAMPLE_PROMPTS, build_demo_dataset, build_tiny_model, demo_hyperparameters
from vibeml.demo.assets import (
    IM_END,
    IM_START,
    PAD,
    build_held_out,
    demo_rows,
    demo_score_examples,
    ensure_demo_assets,
    held_out_rows,
)
from vibeml.models import Hyperparameters, TrainingRequest
from vibeml.trainer.data import detect_format, normalise_rows

SRC = Path(__file__).resolve().parents[2] / "src"


def _subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["HF_HOME"] = str(tmp_path / "hf")
    return env


def test_dataset_is_deterministic_and_large(tmp_path: Path) -> None:
    a = build_demo_dataset(tmp_path / "a.jsonl")
    b = build_demo_dataset(tmp_path / "sub" / "b.jsonl")
    assert a.read_bytes() == b.read_bytes()
    assert build_demo_dataset(tmp_path / "c.jsonl", seed=1).read_bytes() != a.read_bytes()
    rows = [json.loads(line) for line in a.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 1000
    assert all(set(r) == {"instruction", "input", "output"} for r in rows)
    assert detect_format(rows) == "alpaca"
    assert normalise_rows(rows, "alpaca").skipped == 0
    assert all(r["input"] == "" and r["output"] == _rule_answer(r["instruction"]) for r in rows)
    tasks = {r["instruction"].split()[0] for r in rows}
    assert tasks == {"How", "Which"}
    assert {r["output"] for r in rows if r["instruction"].startswith("How")} == {str(n) for n in range(1, 7)}
    assert {r["output"] for r in rows if r["instruction"].startswith("Which")} == {"red", "blue", "green", "gold"}


_COUNT = re.compile(r"^How many words are in: ([a-z]+(?: [a-z]+)*)\?$")
_GROUP = re.compile(r"^Which group does ([A-Z][a-z]+) belong to\?$")
_SUFFIX_GROUP = {"zar": "red", "lop": "blue", "mik": "green", "ven": "gold"}


def _rule_answer(prompt: str) -> str:
    """The right answer by the task's rule, worked out here independently of the generator."""
    if m := _COUNT.match(prompt):
        return str(len(m.group(1).split()))
    m = _GROUP.match(prompt)
    assert m, prompt
    [group] = [g for suffix, g in _SUFFIX_GROUP.items() if m.group(1).endswith(suffix)]
    return group


def _stem(prompt: str) -> str | None:
    """A name's syllables without the group suffix (None for a word count)."""
    m = _GROUP.match(prompt)
    return m.group(1).lower()[:-3] if m else None


def test_held_out_prompts_are_never_trained_on_and_answered_by_the_rules(tmp_path: Path) -> None:
    held = held_out_rows()
    train = demo_rows()
    assert len(held) >= 50 and len({r["instruction"] for r in held}) == len(held)
    assert not {r["instruction"] for r in held} & {r["instruction"] for r in train}
    assert all(r["output"] == _rule_answer(r["instruction"]) for r in held)
    kinds = [r["instruction"].split()[0] for r in held]
    assert kinds.count("How") >= 20 and kinds.count("Which") >= 20
    # a held-out name is not a trained name with another suffix: its syllables were never trained on
    trained_stems = {_stem(r["instruction"]) for r in train} - {None}
    held_stems = {_stem(r["instruction"]) for r in held} - {None}
    assert held_stems and not held_stems & trained_stems
    # ... yet every group and every count is trained on, so the rules can be learnt
    assert {r["output"] for r in held} <= {r["output"] for r in train}
    # the sample prompts shown before and after training are held-out ones too
    assert set(DEMO_SAMPLE_PROMPTS) <= {r["instruction"] for r in held}
    # other seeds of the training data keep away from them as well
    assert not {r["instruction"] for r in held} & {r["instruction"] for r in demo_rows(3000, seed=5)}
    written = json.loads(build_held_out(tmp_path / "h.json").read_text())
    assert written == [{"prompt": r["instruction"], "answer": r["output"]} for r in held]


@pytest.mark.needs_train
def test_score_examples_are_the_demo_datasets_only(demo_assets: Any, tmp_path: Path) -> None:
    examples = demo_score_examples(demo_assets.dataset_path)
    assert examples == [{"prompt": r["instruction"], "answer": r["output"]} for r in held_out_rows()]
    assert demo_assets.held_out_path.is_file()
    other = tmp_path / "demo_dataset.jsonl"  # the name alone is not enough: no whole demo assets beside it
    other.write_bytes(demo_assets.dataset_path.read_bytes())
    assert demo_score_examples(other) == []
    assert demo_score_examples(tmp_path / "missing" / "data.jsonl") == []
    assert demo_score_examples("tatsu-lab/alpaca") == []


@pytest.mark.needs_train
def test_tokenizer_round_trips(demo_assets: Any) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_assets.model_dir)
    assert 256 < len(tok) <= 512
    assert tok.eos_token == IM_END and tok.pad_token == PAD
    for special in (IM_START, IM_END, PAD):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    samples = [json.loads(line) for line in demo_assets.dataset_path.read_text().splitlines()[:50]]
    texts = [s["instruction"] for s in samples] + ["Ünïcödé ✓ 12345 {}", "  two  spaces\nand\ttabs"]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 2?"}, {"role": "assistant", "content": "3"}], tokenize=False
    )
    assert rendered == "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n3<|im_end|>\n"


@pytest.mark.needs_train
def test_model_matches_the_recipe_and_generates(demo_assets: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(demo_assets.model_dir)
    tok = AutoTokenizer.from_pretrained(demo_assets.model_dir)
    cfg = model.config
    assert cfg.model_type == "llama" and cfg.vocab_size == len(tok)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (256, 4, 4)
    assert cfg.intermediate_size == 768 and cfg.max_position_embeddings == 512
    # 4-bit kernels quantise in 64-element blocks along the input and pack the CPU weights in 32-row blocks
    # (bitsandbytes >= 0.49): every linear layer of the demo model has widths they divide, as real models do
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.in_features % 64 == 0 and m.out_features % 64 == 0 for m in linears)
    assert cfg.eos_token_id == tok.eos_token_id
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]


@pytest.mark.needs_train
def test_tiny_model_build_is_deterministic(tmp_path: Path, demo_assets: Any) -> None:
    from safetensors.torch import load_file

    other = build_tiny_model(tmp_path / "again", demo_assets.dataset_path)
    assert (other / "tokenizer.json").read_bytes() == (demo_assets.model_dir / "tokenizer.json").read_bytes()
    a = load_file(str(other / "model.safetensors"))
    b = load_file(str(demo_assets.model_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.mark.needs_train
def test_ensure_is_idempotent_and_repairs(demo_assets: Any) -> None:
    root = demo_assets.model_dir.parent
    stamp = (demo_assets.model_dir / "model.safetensors").stat().st_mtime_ns
    t = time.monotonic()
    again = ensure_demo_assets(root)
    assert time.monotonic() - t < 1.0
    assert again == demo_assets
    assert (demo_assets.model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(root.glob(".build-*"))


@pytest.mark.needs_train
def test_ensure_rebuilds_when_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "tiny-llama").mkdir(parents=True)
    (root / "tiny-llama" / "config.json").write_text("{half-written")  # a build killed midway
    assets = ensure_demo_assets(root)
    assert json.loads((assets.model_dir / "config.json").read_text())["model_type"] == "llama"
    assert assets.dataset_path.is_file()


@pytest.mark.needs_train
def test_ensure_is_safe_across_processes(tmp_path: Path) -> None:
    root = tmp_path / "shared-demo"
    code = (
        "import json, sys\n"
        "from vibeml.demo import ensure_demo_assets\n"
        "a = ensure_demo_assets(sys.argv[1])\n"
        "marker = json.loads((a.model_dir.parent / 'ASSETS_COMPLETE.json').read_text())\n"
        "print(json.dumps({'model': str(a.model_dir), 'data': str(a.dataset_path), 'pid': marker['built_by_pid']}))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_subprocess_env(tmp_path),
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]  # same assets, built once (by the same pid)
    assert outs[0]["pid"] in {p.pid for p in procs}
    assert not list(root.glob(".build-*"))
    assert sum(1 for _ in open(outs[0]["data"], encoding="utf-8")) == 1200


def test_demo_settings() -> None:
    hp = demo_hyperparameters()
    assert isinstance(hp, Hyperparameters)
    assert hp.max_steps is not None and hp.max_steps <= 300
    assert 1e-3 <= hp.learning_rate <= 5e-3 and hp.max_seq_length <= 128
    assert DEMO_SAMPLE_PROMPTS and all(isinstance(p, str) and p for p in DEMO_SAMPLE_PROMPTS)


def test_demo_import_stays_light() -> None:
    code = (
        "import sys, vibeml.demo\n"
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'datasets') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VIBEML_RUN_DEMO_BENCH"), reason="set VIBEML_RUN_DEMO_BENCH=1 (≈30 s)")
def test_demo_trains_fast_with_a_clear_loss_drop(tmp_path: Path, demo_assets: Any) -> None:
    """The demo's promise, measured: the whole trainer process in ≤ 60 s, loss down by > 30%, and held-out
    exact match from 0% to ≥ 60%."""
    from vibeml.trainer.events import ScoreEvent, StepEvent, read_events

    cfg = {
        "model": str(demo_assets.model_dir),
        "dataset": str(demo_assets.dataset_path),
        "output_dir": str(tmp_path / "out"),
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "events_path": str(tmp_path / "events.jsonl"),
        "hyperparameters": demo_hyperparameters().model_dump(),
        "sample_prompts": list(DEMO_SAMPLE_PROMPTS),
        "score_examples": demo_score_examples(demo_assets.dataset_path),
    }
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    env = _subprocess_env(tmp_path)
    env.pop("OMP_NUM_THREADS")
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "vibeml.trainer", "--config", str(tmp_path / "run.json")],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    wall = time.monotonic() - t
    assert proc.returncode == 0, proc.stderr
    events = list(read_events(tmp_path / "events.jsonl"))
    losses = [e.loss for e in events if isinstance(e, StepEvent) and e.loss is not None]
    tail = sum(losses[-10:]) / 10
    print(f"demo: {wall:.1f}s wall, loss {losses[0]:.3f} -> {tail:.3f} (mean of last 10)")
    assert wall <= 60
    assert tail < 0.7 * losses[0]
    before, after = (e for e in events if isinstance(e, ScoreEvent))
    assert (before.phase, after.phase) == ("before", "after") and after.total >= 50
    assert before.correct / before.total <= 0.1 and after.correct / after.total >= 0.6


@pytest.mark.needs_train
def test_the_demo_program_carries_its_held_out_prompts_as_data(demo_assets: Any, tmp_path: Path) -> None:
    """render_program fills score_examples for the demo's dataset only, in the config JSON (never in code)."""
    from vibeml.trainer.config import TrainerConfig
    from vibeml.workflows.registry import render_program

    def program(dataset: Path) -> Any:
        request = TrainingRequest(model=str(demo_assets.model_dir), dataset=str(dataset))
        return render_program(request, "j", output_dir="o", checkpoint_dir="c", events_path="e")

    demo = program(demo_assets.dataset_path)
    config = TrainerConfig.model_validate_json(demo.config_json())
    assert [(e.prompt, e.answer) for e in config.score_examples] == [
        (r["instruction"], r["output"]) for r in held_out_rows()
    ]
    other = tmp_path / "mine.jsonl"
    other.write_bytes(demo_assets.dataset_path.read_bytes())
    assert program(other).config.score_examples == []
