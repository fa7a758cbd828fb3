"""Chat data trains on the assistant's turns only (item 7), with and without {% generation %} markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vibeml.demo.assets import CHAT_TEMPLATE

pytestmark = pytest.mark.needs_train

CHATML_MARKED = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: Plain role tags, and a closing token only on a conversation's end (so a prefix is not a prefix of the whole).
PLAIN_NOT_PREFIX = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Bot: {{ m['content'] }}<|im_end|>\n"
    "{% else %}{{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Bot: {% else %}<|endoftext|>{% endif %}"
)
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "Reverse the word: lemon"},
    {"role": "assistant", "content": "nomel"},
]


@pytest.fixture(scope="module")
def tokenizer_dir(tiny_assets: Any) -> Path:
    return Path(tiny_assets.model_dir)


def _tokenizer(path: Path, template: str, fast: bool = True) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    tok.chat_template = template
    assert tok.is_fast
    if not fast:  # the piece-by-piece path, as for a slow (python) tokenizer
        tok = _Slow(tok)
    return tok


class _Slow:
    """A fast tokenizer seen as a slow one (no offsets): exercises the piece-by-piece path."""

    is_fast = False

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tok, name)

    def __call__(self, text: str, **kw: Any) -> Any:
        assert "return_offsets_mapping" not in kw
        return self._tok(text, **kw)


@pytest.mark.parametrize(
    ("template", "fast"),
    [(CHAT_TEMPLATE, True), (CHAT_TEMPLATE, False), (CHATML_MARKED, True), (PLAIN_NOT_PREFIX, True)],
    ids=["chatml-no-markers", "chatml-no-markers-slow", "chatml-generation-markers", "not-prefix-preserving"],
)
def test_only_assistant_tokens_are_in_the_mask(tokenizer_dir: Path, template: str, fast: bool) -> None:
    from vibeml.trainer.assistant_mask import has_generation_markers, mask_conversation

    tok = _tokenizer(tokenizer_dir, template, fast)
    assert has_generation_markers(template) == (template is CHATML_MARKED)
    out = mask_conversation(tok, CONVERSATION)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    kept = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    dropped = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    for turn in CONVERSATION:
        text = turn["content"]
        assert (text in kept) == (turn["role"] == "assistant"), (turn, kept)
        if turn["role"] != "assistant":
            assert text in dropped
    assert "<|im_end|>" in kept  # the end of the assistant's turn is trained: the model learns to stop
    assert "User" not in kept and "user" not in kept and "system" not in kept


def test_trl_gets_minus_100_on_every_non_assistant_token(tokenizer_dir: Path, tmp_path: Path) -> None:
    """Through TRL's SFTTrainer as the trainer builds it: labels are -100 outside the assistant turns (with
    train_on='all' nothing is masked)."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from vibeml.trainer.assistant_mask import dataset_for_loss

    tok = _tokenizer(tokenizer_dir, CHAT_TEMPLATE)
    model = AutoModelForCausalLM.from_pretrained(str(tokenizer_dir))
    raw = datasets.Dataset.from_list([{"messages": CONVERSATION}] * 2)
    labels: dict[str, list[int]] = {}
    for train_on in ("assistant", "all"):
        data, how = dataset_for_loss(raw, "messages", tok, train_on)
        args = SFTConfig(output_dir=str(tmp_path / train_on), report_to="none", use_cpu=True, max_length=256)
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
        row = trainer.train_dataset[0]
        labels[train_on] = row.get("labels") or list(row["input_ids"])
        ids = row["input_ids"]
        if train_on == "assistant":
            assert how.startswith("assistant turns only")
            kept = tok.decode([t for t, lab in zip(ids, labels[train_on], strict=True) if lab != -100])
            masked = tok.decode([t for t, lab in zip(ids, labels[train_on], strict=True) if lab == -100])
            assert "5" in kept and "nomel" in kept and "terse" not in kept and "lemon" not in kept
            assert "You are terse." in masked and "What is 2 + 3?" in masked
    assert -100 in labels["assistant"] and -100 not in labels["all"]
