"""Loss on the assistant's turns only, for ``messages`` (and sharegpt) rows, whatever the chat template.

TRL's ``assistant_only_loss`` needs a template with ``{% generation %}`` markers (or one TRL knows how to
patch). Here each conversation is tokenised once, as the trainer would (the chat template rendered, then
tokenised without extra special tokens), with a mask of the tokens that belong to assistant turns:

- a template **with** generation markers: the tokenizer's own ``return_assistant_tokens_mask``;
- a template **without** them: the character span of each assistant turn is found by rendering the
  conversation's prefixes turn by turn (the text before the turn is the render of the earlier messages
  with the generation prompt; the text through the turn is the render up to and including it); where a
  template does not render prefixes as prefixes of the whole (some rewrite earlier turns), the turn's
  content is searched for in the text instead, with the end-of-turn token after it. Tokens overlapping an
  assistant span (offsets of a fast tokenizer; else the text is tokenised piece by piece) are kept.

The result has ``input_ids`` and ``assistant_masks`` columns: TRL then builds ``labels`` with -100 for
every token outside the mask, truncates to ``max_length`` and drops rows left without a label.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["assistant_spans", "has_generation_markers", "mask_conversation", "tokenize_assistant_only"]

_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


def has_generation_markers(template: Any) -> bool:
    if isinstance(template, dict):
        template = template.get("default")
    return isinstance(template, str) and bool(_GENERATION.search(template))


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return str(text)


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the ``[start, end)`` character spans of its assistant turns."""
    full = _render(tokenizer, messages)
    eos = getattr(tokenizer, "eos_token", None) or ""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        through = _render(tokenizer, messages[: i + 1])
        if (
            full.startswith(before)
            and full.startswith(through)
            and cursor <= len(before) < len(through)
            and message["content"] in through[len(before) :]
        ):
            start, end = len(before), len(through)
        else:  # not prefix-preserving: find the content itself, and the end-of-turn token after it
            start = full.find(message["content"], cursor)
            if start < 0:
                continue
            end = start + len(message["content"])
            if eos:
                after = full.find(eos, end)
                if after >= 0 and not full[end:after].strip():
                    end = after + len(eos)
        spans.append((start, end))
        cursor = end
    return full, spans


def mask_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> dict[str, list[int]]:
    """``{"input_ids": [...], "assistant_masks": [...]}`` of one conversation (1 = an assistant token)."""
    if has_generation_markers(getattr(tokenizer, "chat_template", None)):
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        return {"input_ids": list(out["input_ids"]), "assistant_masks": list(out["assistant_masks"])}
    text, spans = assistant_spans(tokenizer, messages)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        bits = [int(any(s < b and a < e for s, e in spans)) if b > a else 0 for a, b in offsets]
        return {"input_ids": list(enc["input_ids"]), "assistant_masks": bits}
    ids: list[int] = []
    mask: list[int] = []
    pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        for piece, bit in ((text[pos:start], 0), (text[start:end], 1)):
            if piece:
                piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids.extend(piece_ids)
                mask.extend([bit] * len(piece_ids))
        pos = end
    return {"input_ids": ids, "assistant_masks": mask}


def tokenize_assistant_only(dataset: Any, tokenizer: Any) -> Any:
    """A ``messages`` dataset → ``input_ids`` + ``assistant_masks`` (the ``datasets.Dataset`` way)."""

    def one(row: dict[str, Any]) -> dict[str, list[int]]:
        return mask_conversation(tokenizer, list(row["messages"]))

    return dataset.map(one, remove_columns=list(dataset.column_names), desc="Masking non-assistant tokens")


def dataset_for_loss(dataset: Any, dataset_format: str, tokenizer: Any, train_on: str) -> tuple[Any, str]:
    """The dataset the trainer gets, and what the loss is on (for the log)."""
    if dataset_format in ("messages", "sharegpt") and train_on == "assistant":
        how = "generation markers" if has_generation_markers(getattr(tokenizer, "chat_template", None)) else "turns"
        return tokenize_assistant_only(dataset, tokenizer), f"assistant turns only (masked by {how})"
    if dataset_format in ("alpaca", "prompt_completion"):
        return dataset, "the completion only"
    return dataset, "every token"
