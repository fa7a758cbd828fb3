"""Offline demo assets: a small task dataset and a tiny randomly initialised Llama model that learns it.

Everything here is deterministic (same bytes for the dataset, same seed for the weights) and needs no
network. ``torch``/``transformers``/``tokenizers`` are imported inside functions only: this module is
imported on the CLI's launch path, which must stay fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibeml.exceptions import ConfigurationError
from vibeml.models import Hyperparameters

__all__ = [
    "CHAT_TEMPLATE",
    "DEMO_ASSETS_VERSION",
    "DEMO_SAMPLE_PROMPTS",
    "SPECIAL_TOKENS",
    "DemoAssets",
    "build_demo_dataset",
    "build_tiny_model",
    "demo_hyperparameters",
    "ensure_demo_assets",
]

#: Bump when the dataset, tokenizer or model recipe changes: cached assets are then rebuilt.
DEMO_ASSETS_VERSION = 2

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = (PAD, ENDOFTEXT, IM_START, IM_END)

#: ChatML. ``<|im_end|>`` is the eos token, so generation stops at the end of the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

VOCAB_SIZE = 512
#: The MLP width: a multiple of 256 like real models' (see :func:`build_tiny_model`).
MLP_WIDTH = 768
DATASET_FILE = "demo_dataset.jsonl"
MODEL_DIR = "tiny-llama"
_MARKER = "ASSETS_COMPLETE.json"

_WORDS = (
    "cat",
    "dog",
    "sun",
    "moon",
    "star",
    "tree",
    "leaf",
    "rock",
    "fish",
    "bird",
    "milk",
    "cake",
    "rain",
    "snow",
    "wind",
    "fire",
    "lake",
    "road",
    "ship",
    "boat",
    "apple",
    "grape",
    "lemon",
    "mango",
    "peach",
    "bread",
    "chair",
    "table",
    "house",
    "river",
    "cloud",
    "stone",
    "plant",
    "light",
    "music",
    "smile",
    "dream",
    "ocean",
    "tiger",
    "zebra",
    "red",
    "blue",
    "green",
    "pink",
    "gold",
    "gray",
    "book",
    "door",
    "lamp",
    "desk",
    "kite",
    "frog",
    "bear",
    "wolf",
    "duck",
    "goat",
    "horse",
    "mouse",
    "sheep",
    "whale",
)

#: Prompts answered before and after demo training (the change is the point of the demo).
DEMO_SAMPLE_PROMPTS = (
    "What is 12 + 7?",
    "Sort these digits: 4 1 3",
)


@dataclass(frozen=True)
class DemoAssets:
    """Where the demo model and dataset live."""

    model_dir: Path
    dataset_path: Path


# ------------------------------------------------------------------------------------------- dataset


def _example(rng: random.Random) -> dict[str, str]:
    """One alpaca-style example of a task a tiny model can pick up."""
    kind = rng.randrange(8)
    word = rng.choice(_WORDS)
    if kind == 0:
        a, b = rng.randint(0, 30), rng.randint(0, 30)
        return {"instruction": f"What is {a} + {b}?", "input": "", "output": str(a + b)}
    if kind == 1:
        a = rng.randint(0, 40)
        b = rng.randint(0, a)
        return {"instruction": f"What is {a} - {b}?", "input": "", "output": str(a - b)}
    if kind == 2:
        return {"instruction": "Reverse the word.", "input": word, "output": word[::-1]}
    if kind == 3:
        digits = [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 5))]
        return {
            "instruction": f"Sort these digits: {' '.join(digits)}",
            "input": "",
            "output": " ".join(sorted(digits)),
        }
    if kind == 4:
        return {"instruction": "Write the word in upper case.", "input": word, "output": word.upper()}
    if kind == 5:
        return {"instruction": f"How many letters are in '{word}'?", "input": "", "output": str(len(word))}
    if kind == 6:
        return {"instruction": f"What is the first letter of {word}?", "input": "", "output": word[0]}
    n = rng.randint(0, 98)
    return {"instruction": f"What number comes after {n}?", "input": "", "output": str(n + 1)}


def demo_rows(n: int = 1200, seed: int = 0) -> list[dict[str, str]]:
    """The demo examples as dicts (deterministic for a given ``n`` and ``seed``)."""
    rng = random.Random(seed)
    return [_example(rng) for _ in range(n)]


def build_demo_dataset(path: str | Path, n: int = 1200, seed: int = 0) -> Path:
    """Write ``n`` alpaca-style examples as JSONL; the same arguments give the same bytes.

    Args:
        path: The ``.jsonl`` file to write (parents are created).
        n: Number of examples.
        seed: Seed of the generator.

    Returns:
        The path written.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, sort_keys=True, ensure_ascii=True) for row in demo_rows(n, seed)]
    p.write_bytes(("\n".join(lines) + "\n").encode("ascii"))
    return p


# --------------------------------------------------------------------------------------------- model


def _corpus(dataset_path: Path) -> list[str]:
    texts = ["user", "assistant", "system", "\n"]
    with open(dataset_path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                texts.extend(str(row.get(k, "")) for k in ("instruction", "input", "output"))
    return texts


def _build_tokenizer(dataset_path: Path) -> Any:
    """A byte-level BPE tokenizer trained on the demo data, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(dataset_path), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[IM_START, ENDOFTEXT],
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
        padding_side="right",
    )


def build_tiny_model(model_dir: str | Path, dataset_path: str | Path, seed: int = 0) -> Path:
    """Train the tokenizer on ``dataset_path`` and save it with a random-init tiny Llama to ``model_dir``.

    The model: vocab = tokenizer size (512), hidden 256, 4 layers, 4 heads, MLP 768, 512 positions,
    weights drawn with ``seed`` (≈3.5 M parameters, initializer range 0.06). Every linear layer's width is a
    multiple of 256, as in real models (Llama rounds its MLP width to ``multiple_of=256``), so 4-bit kernels'
    block constraints (bitsandbytes: 64-element quantisation blocks, 32-row packed CPU blocks) hold for it.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(Path(dataset_path))
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(PAD)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=MLP_WIDTH,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
        # Wider than the usual 0.02: LoRA leaves the (tied) embedding/LM head frozen, and a head this
        # small at 0.02 cannot produce confident logits, so the loss would plateau near 60% of its start.
        initializer_range=0.06,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None, do_sample=False
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# -------------------------------------------------------------------------------------------- ensure


def _complete(demo_dir: Path) -> bool:
    marker = demo_dir / _MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("version") == DEMO_ASSETS_VERSION
        and (demo_dir / DATASET_FILE).is_file()
        and (demo_dir / MODEL_DIR / "config.json").is_file()
    )


def ensure_demo_assets(demo_dir: str | Path) -> DemoAssets:
    """Build the demo dataset and tiny model under ``demo_dir`` once; later calls reuse them.

    Safe when several processes call it at once: a file lock serialises builders, assets are built in
    a temporary directory and moved into place, and a marker file written last says they are whole.
    """
    from filelock import FileLock

    from vibeml.safe_paths import make_private_dir

    root = make_private_dir(Path(demo_dir))
    assets = DemoAssets(model_dir=root / MODEL_DIR, dataset_path=root / DATASET_FILE)
    if _complete(root):
        return assets
    missing = [m for m in ("torch", "transformers", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigurationError(
            f"the demo builds and trains a tiny model, which needs the training libraries ({', '.join(missing)} "
            "not installed)",
            {"missing": missing},
            "Run `make demo` in a clone of VibeML, or install the train extra: pip install 'vibeml[train]'.",
        )
    with FileLock(str(root / ".build.lock")):
        if _complete(root):  # another process built them while we waited
            return assets
        (root / _MARKER).unlink(missing_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            dataset = build_demo_dataset(tmp / DATASET_FILE)
            build_tiny_model(tmp / MODEL_DIR, dataset)
            if assets.model_dir.exists():
                shutil.rmtree(assets.model_dir)
            (tmp / MODEL_DIR).replace(assets.model_dir)
            (tmp / DATASET_FILE).replace(assets.dataset_path)
            marker = {"version": DEMO_ASSETS_VERSION, "built_by_pid": os.getpid()}
            (tmp / _MARKER).write_text(json.dumps(marker), encoding="utf-8")
            (tmp / _MARKER).replace(root / _MARKER)  # last, atomically: the assets are whole
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return assets


# ---------------------------------------------------------------------------------------- settings


def demo_hyperparameters() -> Hyperparameters:
    """Settings that train the demo model in well under a minute on 2 CPU cores with a clear loss drop."""
    return Hyperparameters(
        max_steps=60,
        learning_rate=4e-3,
        batch_size=16,
        gradient_accumulation_steps=1,
        max_seq_length=64,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        lora_target_modules="all-linear",
        gradient_checkpointing=False,
        warmup_ratio=0.05,
        lr_scheduler_type="linear",
        logging_steps=1,
        save_steps=30,
        save_total_limit=2,  # the one before the newest: what a resume falls back to if the newest is torn
        seed=42,
    )
