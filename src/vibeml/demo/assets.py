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
    "build_held_out",
    "build_tiny_model",
    "demo_hyperparameters",
    "demo_score_examples",
    "ensure_demo_assets",
    "held_out_rows",
]

#: Bump when the dataset, tokenizer or model recipe changes: cached assets are then rebuilt.
DEMO_ASSETS_VERSION = 3

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
#: JSON, not JSONL: the one ``.jsonl`` beside the model stays the training data.
HELD_OUT_FILE = "demo_held_out.json"
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

#: Names are two syllables and a suffix; the suffix alone says the group (a rule a tiny model picks up).
_SYLLABLES = ("ba", "ko", "ri", "tu", "me", "sa", "lo", "ni", "pe", "du", "fa", "gi", "ho", "ju", "ke", "mo")
_GROUPS = (("zar", "red"), ("lop", "blue"), ("mik", "green"), ("ven", "gold"))
#: Which syllable pairs are held out: names built on them are never trained on, only scored.
_HELD_OUT_PAIR = 5
COUNT_MAX = 6

#: Held-out prompts answered before and after demo training (the change is the point of the demo): they
#: are built by the rules the training rows follow, and never trained on.
DEMO_SAMPLE_PROMPTS = (
    "How many words are in: moon cake frog river?",
    "Which group does Kodumik belong to?",
    "Which group does Basaven belong to?",
)


@dataclass(frozen=True)
class DemoAssets:
    """Where the demo model and dataset live (and the held-out examples the demo is scored on)."""

    model_dir: Path
    dataset_path: Path

    @property
    def held_out_path(self) -> Path:
        return self.dataset_path.parent / HELD_OUT_FILE


# ------------------------------------------------------------------------------------------- dataset


def _name(i: int, j: int, suffix: str) -> str:
    return (_SYLLABLES[i] + _SYLLABLES[j] + suffix).capitalize()


def _held_out_pair(i: int, j: int) -> bool:
    return (i * len(_SYLLABLES) + j) % _HELD_OUT_PAIR == 0


def _row(instruction: str, output: str) -> dict[str, str]:
    return {"instruction": instruction, "input": "", "output": output}


def _count(words: list[str]) -> dict[str, str]:
    return _row(f"How many words are in: {' '.join(words)}?", str(len(words)))


def _group(i: int, j: int, g: int) -> dict[str, str]:
    suffix, group = _GROUPS[g]
    return _row(f"Which group does {_name(i, j, suffix)} belong to?", group)


def _words(rng: random.Random, low: int) -> list[str]:
    return rng.sample(_WORDS, rng.randint(low, COUNT_MAX))


def held_out_rows(n: int = 60, seed: int = 0) -> list[dict[str, str]]:
    """``n`` examples the demo is scored on: the training rules, on inputs the training rows never use.

    Groups: names on held-out syllable pairs (no trained name has them). Word counts: word lists drawn by
    their own generator (the training rows skip every held-out prompt). The sample prompts come first.
    """
    rng = random.Random(10_000 + seed)
    pairs = [(i, j) for i in range(len(_SYLLABLES)) for j in range(len(_SYLLABLES)) if _held_out_pair(i, j)]
    rows = [_row(p, _answer(p)) for p in DEMO_SAMPLE_PROMPTS]
    seen = {r["instruction"] for r in rows}
    kind = 0
    while len(rows) < n:
        if kind % 2 == 0:
            row = _count(_words(rng, 2))
        else:
            i, j = rng.choice(pairs)
            row = _group(i, j, rng.randrange(len(_GROUPS)))
        kind += 1
        if row["instruction"] not in seen:
            seen.add(row["instruction"])
            rows.append(row)
    return rows


def _answer(prompt: str) -> str:
    """The right answer to a prompt of one of the demo's tasks (for the sample prompts)."""
    if prompt.startswith("How many words are in: "):
        return str(len(prompt.removeprefix("How many words are in: ").removesuffix("?").split()))
    name = prompt.removeprefix("Which group does ").removesuffix(" belong to?").lower()
    return next(group for suffix, group in _GROUPS if name.endswith(suffix))


def demo_rows(n: int = 1200, seed: int = 0) -> list[dict[str, str]]:
    """The demo's training examples as dicts (deterministic for a given ``n`` and ``seed``): word counts
    and name groups; none is a held-out prompt (:func:`held_out_rows`)."""
    rng = random.Random(seed)
    held_out = {r["instruction"] for r in held_out_rows()}
    pairs = [(i, j) for i in range(len(_SYLLABLES)) for j in range(len(_SYLLABLES)) if not _held_out_pair(i, j)]
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        if rng.randrange(2) == 0:
            row = _count(_words(rng, 1))
        else:
            i, j = rng.choice(pairs)
            row = _group(i, j, rng.randrange(len(_GROUPS)))
        if row["instruction"] not in held_out:
            rows.append(row)
    return rows


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


def build_held_out(path: str | Path) -> Path:
    """Write the held-out examples (:func:`held_out_rows`) as a JSON list of ``{"prompt", "answer"}``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": r["instruction"], "answer": r["output"]} for r in held_out_rows()]
    p.write_text(json.dumps(rows, indent=1, ensure_ascii=True) + "\n", encoding="ascii")
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
    # a corpus with fewer merges than that leaves the vocabulary short: reserved tokens fill it, so the
    # LM head's width stays VOCAB_SIZE (a multiple of 64, as 4-bit kernels need)
    short = VOCAB_SIZE - tok.get_vocab_size()
    if short > 0:
        tok.add_special_tokens([f"<|reserved_{i}|>" for i in range(short)])
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
        and (demo_dir / HELD_OUT_FILE).is_file()
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
            build_held_out(tmp / HELD_OUT_FILE)
            build_tiny_model(tmp / MODEL_DIR, dataset)
            if assets.model_dir.exists():
                shutil.rmtree(assets.model_dir)
            (tmp / MODEL_DIR).replace(assets.model_dir)
            (tmp / DATASET_FILE).replace(assets.dataset_path)
            (tmp / HELD_OUT_FILE).replace(assets.held_out_path)
            marker = {"version": DEMO_ASSETS_VERSION, "built_by_pid": os.getpid()}
            (tmp / _MARKER).write_text(json.dumps(marker), encoding="utf-8")
            (tmp / _MARKER).replace(root / _MARKER)  # last, atomically: the assets are whole
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return assets


def demo_score_examples(dataset: str | Path) -> list[dict[str, str]]:
    """The held-out examples to score a job on when it trains on the demo's dataset, else ``[]``.

    Read from the file built beside the dataset (:func:`ensure_demo_assets`), only when ``dataset`` is
    the demo's (named so, in a folder of whole assets of this version). They reach the trainer as data in
    its config (``score_examples``).
    """
    path = Path(dataset)
    try:
        if path.name != DATASET_FILE or not _complete(path.parent):
            return []
        rows = json.loads((path.parent / HELD_OUT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(rows, list):
        return []
    return [
        {"prompt": r["prompt"], "answer": r["answer"]}
        for r in rows
        if isinstance(r, dict) and isinstance(r.get("prompt"), str) and isinstance(r.get("answer"), str)
    ]


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
