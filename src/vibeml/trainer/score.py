"""Held-out exact match: greedy answers to prompts the model never trained on, compared with the right ones.

The prompts go through the model's chat template (as a user turn, with the generation prompt), a batch at a
time (left-padded, so every row's answer starts where its prompt ends), and the answers are compared after
:func:`normalise`: case, surrounding whitespace and quotes, a final full stop and runs of spaces do not count.

Torch and transformers are imported inside functions; :func:`normalise` and :func:`exact_match` need neither.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vibeml.trainer.modeling import eos_ids

__all__ = ["ScoreResult", "ScoredAnswer", "exact_match", "generate_replies", "normalise", "score_examples"]

_SPACES = re.compile(r"\s+")
_QUOTES = "\"'`“”‘’"


def normalise(text: str) -> str:
    """``text`` as compared: lower case, runs of whitespace as one space, no surrounding quotes or final
    ``.``/``!``, no surrounding whitespace."""
    out = _SPACES.sub(" ", text).strip()
    out = out.rstrip(".!").strip().strip(_QUOTES).strip()
    return out.casefold()


def exact_match(completion: str, answer: str) -> bool:
    """Whether ``completion`` is ``answer`` once both are normalised (an empty answer never matches)."""
    want = normalise(answer)
    return bool(want) and normalise(completion) == want


@dataclass(frozen=True)
class ScoredAnswer:
    prompt: str
    answer: str
    completion: str
    correct: bool


@dataclass(frozen=True)
class ScoreResult:
    """How many of the examples the model answered exactly right, and every answer."""

    answers: list[ScoredAnswer] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.answers)

    @property
    def correct(self) -> int:
        return sum(a.correct for a in self.answers)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    max_length: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to user ``prompts`` through the chat template, ``batch_size`` prompts per ``generate``.

    Prompts longer than ``max_length`` tokens keep their end (where the question and the generation prompt
    are). The tokenizer's padding and truncation sides are restored afterwards.
    """
    import torch
    from transformers import GenerationConfig

    if not prompts:
        return []
    texts = [
        str(tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False))
        for p in prompts
    ]
    device = next(model.parameters()).device
    eos = eos_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id, eos_token_id=eos or None, use_cache=True
    )
    sides = (tokenizer.padding_side, tokenizer.truncation_side)
    was_training = model.training
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    model.eval()
    replies: list[str] = []
    try:
        for start in range(0, len(texts), max(1, batch_size)):
            enc = tokenizer(
                texts[start : start + max(1, batch_size)],
                add_special_tokens=False,  # the chat template already wrote any the model wants
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = model.generate(
                    input_ids=enc["input_ids"].to(device),
                    attention_mask=enc["attention_mask"].to(device),
                    generation_config=gen_config,
                )
            width = enc["input_ids"].shape[1]
            for row in out[:, width:]:
                text = str(tokenizer.decode(row, skip_special_tokens=True))
                replies.append(text.replace("<|im_end|>", "").strip())
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = sides
        if was_training:
            model.train()
    return replies


def score_examples(
    model: Any,
    tokenizer: Any,
    examples: Sequence[tuple[str, str]],
    max_new_tokens: int,
    max_length: int,
    batch_size: int = 32,
) -> ScoreResult:
    """Exact match of the model's greedy answers on ``(prompt, answer)`` pairs."""
    prompts = [p for p, _ in examples]
    replies = generate_replies(model, tokenizer, prompts, max_new_tokens, max_length, batch_size)
    return ScoreResult([ScoredAnswer(p, a, r, exact_match(r, a)) for (p, a), r in zip(examples, replies, strict=True)])
