"""Dataset detection, normalisation and loading (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibeml.exceptions import DatasetError
from vibeml.trainer.data import (
    FORMATS,
    detect_format,
    load_raw_dataset,
    load_training_dataset,
    normalise_row,
    normalise_rows,
    output_columns,
    resolve_dataset_source,
)

# Real-shaped rows, as the public datasets hold them.
ALPACA = [
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "1. Eat a balanced diet.\n2. Exercise.\n3. Sleep.",
    },
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
]
DOLLY = [{"instruction": "Who wrote Hamlet?", "context": "", "response": "Shakespeare", "category": "qa"}]
MESSAGES = [
    {
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ]
    },
]
SHAREGPT = [
    {
        "id": "x1",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "What's the capital of France?"},
            {"from": "gpt", "value": "Paris."},
        ],
    },
]
PROMPT_COMPLETION = [{"prompt": "The sky is", "completion": " blue."}]
PROMPT_COMPLETION_CHAT = [
    {
        "prompt": [{"role": "user", "content": "Name a colour."}],
        "completion": [{"role": "assistant", "content": "Green."}],
    }
]
TEXT = [{"text": "Once upon a time there was a tiny model."}]

CORPUS = [
    (ALPACA, "alpaca"),
    (DOLLY, "alpaca"),
    (MESSAGES, "messages"),
    (SHAREGPT, "sharegpt"),
    (PROMPT_COMPLETION, "prompt_completion"),
    (PROMPT_COMPLETION_CHAT, "prompt_completion"),
    (TEXT, "text"),
]


@pytest.mark.parametrize(("rows", "fmt"), CORPUS)
def test_detects_each_format(rows: list[dict[str, Any]], fmt: str) -> None:
    assert detect_format(rows) == fmt
    result = normalise_rows(rows, fmt)
    assert result.skipped == 0
    assert len(result.rows) == len(rows)
    for row in result.rows:
        assert set(row) == set(output_columns(fmt))


def test_alpaca_becomes_conversational_prompt_completion() -> None:
    out = normalise_row(ALPACA[1], "alpaca")
    assert out == {
        "prompt": [{"role": "user", "content": "Translate to French.\n\nGood morning"}],
        "completion": [{"role": "assistant", "content": "Bonjour"}],
    }
    no_input = normalise_row(ALPACA[0], "alpaca")
    assert no_input["prompt"][0]["content"] == "Give three tips for staying healthy."
    with_system = normalise_row({**ALPACA[1], "system": "Be polite."}, "alpaca")
    assert with_system["prompt"][0] == {"role": "system", "content": "Be polite."}
    assert normalise_row(DOLLY[0], "alpaca")["completion"][0]["content"] == "Shakespeare"


def test_sharegpt_roles_are_mapped() -> None:
    out = normalise_row(SHAREGPT[0], "sharegpt")
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant"]
    assert out["messages"][2]["content"] == "Paris."


def test_prompt_completion_strings_become_chat() -> None:
    out = normalise_row(PROMPT_COMPLETION[0], "prompt_completion")
    assert out["prompt"] == [{"role": "user", "content": "The sky is"}]
    assert out["completion"] == [{"role": "assistant", "content": " blue."}]
    assert normalise_row(PROMPT_COMPLETION_CHAT[0], "prompt_completion") == PROMPT_COMPLETION_CHAT[0]


def test_messages_drop_extra_keys_and_accept_text_parts() -> None:
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": "bob"},
            {"role": "assistant", "content": "Hey", "weight": 1},
        ]
    }
    assert normalise_row(row, "messages") == {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]
    }


def test_conversations_with_role_content_are_messages() -> None:
    rows = [{"conversations": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
    assert detect_format(rows) == "messages"
    assert normalise_rows(rows, "messages").rows[0]["messages"][1] == {"role": "assistant", "content": "b"}


def test_explicit_format_is_checked_against_columns() -> None:
    assert detect_format([*TEXT, {"text": "x", "prompt": "p", "completion": "c"}], "text") == "text"
    both = [{"prompt": "p", "completion": "c", "text": "t"}]
    assert detect_format(both) == "prompt_completion"
    assert detect_format(both, "text") == "text"
    with pytest.raises(DatasetError) as info:
        detect_format(TEXT, "alpaca")
    assert "['text']" in info.value.message and "instruction" in info.value.message
    with pytest.raises(DatasetError):
        detect_format(TEXT, "yaml")  # type: ignore[arg-type]


def test_unknown_columns_name_found_and_expected() -> None:
    with pytest.raises(DatasetError) as info:
        detect_format([{"question": "q", "answer": "a"}])
    err = info.value
    assert "answer" in err.message and "question" in err.message
    assert "instruction" in err.message and "messages" in err.message
    assert err.context["columns_found"] == ["answer", "question"]
    assert "alpaca" in err.context["columns_expected"]
    assert err.recovery_suggestion


def test_malformed_rows_are_skipped_and_counted() -> None:
    rows: list[Any] = [
        ALPACA[0],
        {"instruction": "", "output": "x"},  # empty instruction
        {"instruction": "do", "output": None},  # missing output
        "not an object",
        {"instruction": "Add.", "input": 3, "output": 5},  # numbers (CSV) are fine
    ]
    result = normalise_rows(rows, "alpaca")
    assert len(result.rows) == 2 and result.skipped == 3
    assert result.problems[0].startswith("row 2:")
    assert result.rows[1]["completion"][0]["content"] == "5"
    conv = normalise_rows(
        [
            {"messages": [{"role": "user", "content": "hi"}]},  # no assistant turn
            {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]},
            {"messages": "hello"},
        ],
        "messages",
    )
    assert conv.skipped == 3 and not conv.rows
    assert "assistant" in conv.problems[0] and "wizard" in conv.problems[1]


# ------------------------------------------------------------------------------------------- files


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.needs_train
@pytest.mark.parametrize(("rows", "fmt"), CORPUS)
def test_load_jsonl_each_format(tmp_path: Path, rows: list[dict[str, Any]], fmt: str) -> None:
    prepared = load_training_dataset(str(_write(tmp_path / "d.jsonl", rows * 3)))
    assert prepared.format == fmt
    assert prepared.num_rows == len(rows) * 3 and prepared.skipped == 0
    assert set(prepared.dataset.column_names) == set(output_columns(fmt))
    assert prepared.dataset[0] == normalise_row(rows[0], fmt)


@pytest.mark.needs_train
def test_load_json_csv_parquet_and_folder(tmp_path: Path) -> None:
    import pandas as pd

    (tmp_path / "a.json").write_text(json.dumps(ALPACA), encoding="utf-8")
    assert load_training_dataset(str(tmp_path / "a.json")).num_rows == 2
    pd.DataFrame(ALPACA).to_csv(tmp_path / "a.csv", index=False)
    csv = load_training_dataset(str(tmp_path / "a.csv"))
    assert csv.format == "alpaca" and csv.num_rows == 2
    pd.DataFrame(PROMPT_COMPLETION * 2).to_parquet(tmp_path / "p.parquet")
    assert load_training_dataset(str(tmp_path / "p.parquet")).format == "prompt_completion"
    folder = tmp_path / "folder"
    folder.mkdir()
    _write(folder / "part1.jsonl", TEXT)
    _write(folder / "part2.jsonl", TEXT * 2)
    assert load_training_dataset(str(folder)).num_rows == 3
    explicit = load_training_dataset(str(folder), dataset_format="text", split="train[:2]")
    assert explicit.num_rows == 2


@pytest.mark.needs_train
def test_skipped_rows_are_reported_and_all_bad_is_an_error(tmp_path: Path) -> None:
    prepared = load_training_dataset(str(_write(tmp_path / "d.jsonl", [*ALPACA, {"instruction": "x"}])))
    assert prepared.num_rows == 2 and prepared.skipped == 1
    assert prepared.problems == ["row 3: output is missing"]
    with pytest.raises(DatasetError) as info:
        load_training_dataset(str(_write(tmp_path / "bad.jsonl", [{"text": ""}, {"text": "  "}])))
    assert "no usable rows" in info.value.message and "row 1" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_raw_dataset(str(tmp_path / "nope.jsonl"))
    assert "not found" in info.value.message
    assert info.value.recovery_suggestion


@pytest.mark.needs_train
def test_corrupt_json(tmp_path: Path) -> None:
    p = tmp_path / "broken.jsonl"
    p.write_text('{"text": "fine"}\n{"text": "trunc\n', encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_raw_dataset(str(p))
    assert "cannot read" in info.value.message and "JSON" in info.value.message


@pytest.mark.needs_train
@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_raw_dataset(str(p))
    assert "empty" in info.value.message


@pytest.mark.needs_train
def test_wrong_columns_in_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DatasetError) as info:
        load_training_dataset(str(p))
    assert "question" in info.value.message and "instruction" in info.value.message


@pytest.mark.needs_train
def test_other_local_problems(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DatasetError, match="unsupported"):
        resolve_dataset_source(str(tmp_path / "data.txt"))
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(DatasetError, match=r"no \.jsonl"):
        resolve_dataset_source(str(tmp_path / "empty-dir"))
    _write(tmp_path / "t.jsonl", TEXT)
    with pytest.raises(DatasetError, match="single split"):
        load_raw_dataset(str(tmp_path / "t.jsonl"), split="test")


@pytest.mark.needs_train
def test_saved_dataset_folder(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(TEXT * 2)}).save_to_disk(str(tmp_path / "saved"))
    assert load_training_dataset(str(tmp_path / "saved")).num_rows == 2
    with pytest.raises(DatasetError, match="no split"):
        load_raw_dataset(str(tmp_path / "saved"), split="validation")


@pytest.mark.needs_train
@pytest.mark.usefixtures("offline_hub")
def test_hub_offline_is_a_clear_error() -> None:
    with pytest.raises(DatasetError) as info:
        load_raw_dataset("someone/some-dataset")
    assert "offline" in info.value.message or "reach" in info.value.message
    assert info.value.recovery_suggestion


@pytest.mark.parametrize(
    "name", ["$(rm -rf /)", "__import__('os').system('id')", "a b", "x;y", "../../no-such-dir/x", "a/b/c"]
)
def test_odd_names_are_not_found(name: str) -> None:
    with pytest.raises(DatasetError, match="not found"):
        resolve_dataset_source(name)


# ------------------------------------------------------------------------------------------ property

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "instruction",
        "input",
        "output",
        "response",
        "context",
        "system",
        "messages",
        "conversations",
        "prompt",
        "completion",
        "text",
        "role",
        "content",
        "from",
        "value",
        "other",
    ]
)
_message = st.dictionaries(st.sampled_from(["role", "content", "from", "value", "type"]), _json, max_size=3)
_row = st.dictionaries(_keys, _json | st.lists(_message, max_size=3), max_size=5)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_row | _json, max_size=6), fmt=st.sampled_from(["auto", *FORMATS]))
def test_detection_and_normalisation_only_raise_dataset_errors(rows: list[Any], fmt: str) -> None:
    try:
        detected = detect_format(rows, fmt)
    except DatasetError:
        return
    assert detected in FORMATS
    result = normalise_rows(rows, detected)
    assert len(result.rows) + result.skipped == len(rows)
    for row in result.rows:
        assert set(row) == set(output_columns(detected))
        for column in ("prompt", "completion", "messages"):
            for message in row.get(column, []):
                assert set(message) == {"role", "content"}
                assert isinstance(message["content"], str)
