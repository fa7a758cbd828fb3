"""Held-out exact match: the normalisation, and batched greedy generation on the tiny demo model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vibeml.trainer.score import ScoredAnswer, ScoreResult, exact_match, normalise, score_examples


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("4", "4"),
        ("  4 \n", "4"),
        ("Green", "green"),
        ("green.", "green"),
        ('"gold"', "gold"),
        ("a  b\tc", "a b c"),
        ("Done!", "done"),
    ],
)
def test_exact_match_ignores_case_space_quotes_and_a_final_stop(completion: str, answer: str) -> None:
    assert exact_match(completion, answer)


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("14", "4"),  # a number is not its digits
        ("4 words", "4"),
        ("", "4"),
        ("gree", "green"),
        ("green blue", "green"),
        ("", ""),  # an empty answer never matches
        ("   ", " "),
    ],
)
def test_exact_match_is_exact(completion: str, answer: str) -> None:
    assert not exact_match(completion, answer)


def test_normalise() -> None:
    assert normalise("  The  Answer.\n") == "the answer"
    assert normalise("'x'") == "x"
    assert normalise("3.5") == "3.5"  # only a final stop goes


def test_score_result_counts() -> None:
    r = ScoreResult([ScoredAnswer("p", "a", "a", True), ScoredAnswer("q", "b", "c", False)])
    assert (r.correct, r.total, r.accuracy) == (1, 2, 0.5)
    assert ScoreResult().accuracy == 0.0


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.needs_train
def test_batched_generation_matches_one_at_a_time(tiny: tuple[Any, Any]) -> None:
    """Left padding: every prompt of a batch, long or short, gets the answer it gets alone."""
    from vibeml.trainer.modeling import generate_reply
    from vibeml.trainer.score import generate_replies

    model, tok = tiny
    prompts = [
        "How many words are in: cat?",
        "How many words are in: moon cake frog river tiger lamp?",
        "Which group does Kodumik belong to?",
        "hi",
        "Which group does Basaven belong to? " * 3,
    ]
    sides = (tok.padding_side, tok.truncation_side)
    batched = generate_replies(model, tok, prompts, max_new_tokens=6, max_length=64, batch_size=4)
    alone = [generate_reply(model, tok, p, 6, 64) for p in prompts]
    assert batched == alone
    assert (tok.padding_side, tok.truncation_side) == sides and not model.training
    assert generate_replies(model, tok, [], 6, 64) == []


@pytest.mark.needs_train
def test_score_examples_counts_exact_matches(tiny: tuple[Any, Any]) -> None:
    """The untrained model's own answers score 100%; other answers score 0%."""
    from vibeml.trainer.modeling import generate_reply

    model, tok = tiny
    prompts = ["How many words are in: cat dog?", "Which group does Kodumik belong to?", "hi there"]
    own = [generate_reply(model, tok, p, 6, 64) for p in prompts]
    assert all(own), own  # a random model still says something
    right = score_examples(model, tok, list(zip(prompts, own, strict=True)), 6, 64, batch_size=2)
    assert (right.correct, right.total) == (3, 3)
    assert [a.completion for a in right.answers] == own
    wrong = score_examples(model, tok, [(p, "zz-not-an-answer") for p in prompts], 6, 64)
    assert (wrong.correct, wrong.total) == (0, 3) and not any(a.correct for a in wrong.answers)
