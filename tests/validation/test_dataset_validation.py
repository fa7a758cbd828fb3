"""DatasetValidator: format detection on real-shaped samples, every file type, hub datasets on the fake hub."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from vibeml.client import dataset_stats
from vibeml.exceptions import CredentialError, DatasetError
from vibeml.settings import Settings
from vibeml.testing.fake_hub import FakeHub
from vibeml.validation import DatasetReport, DatasetValidator

# Rows shaped like the public datasets people fine-tune on.
CORPUS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "alpaca": (
        "alpaca",
        [
            {
                "instruction": "Give three tips for staying healthy.",
                "input": "",
                "output": "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Sleep well.",
            },
            {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
            {"instruction": "What is 7 * 6?", "input": "", "output": "42"},
        ],
    ),
    "dolly": (
        "alpaca",
        [  # databricks-dolly-15k: instruction/context/response/category
            {
                "instruction": "Who wrote Hamlet?",
                "context": "",
                "response": "William Shakespeare.",
                "category": "open_qa",
            },
            {
                "instruction": "Summarise the text.",
                "context": "Paris is the capital of France.",
                "response": "Paris is France's capital.",
                "category": "summarization",
            },
        ],
    ),
    "openai_messages": (
        "messages",
        [
            {
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."},
                ]
            },
            {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        ],
    ),
    "sharegpt": (
        "sharegpt",
        [
            {
                "id": "a1",
                "conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Red."}],
            },
            {
                "id": "a2",
                "conversations": [
                    {"from": "system", "value": "Be kind."},
                    {"from": "human", "value": "Hi"},
                    {"from": "gpt", "value": "Hello!"},
                ],
            },
        ],
    ),
    "prompt_completion": (
        "prompt_completion",
        [
            {"prompt": "The capital of Italy is", "completion": " Rome."},
            {"prompt": "The capital of Spain is", "completion": " Madrid."},
        ],
    ),
    "conversational_prompt_completion": (
        "prompt_completion",
        [
            {
                "prompt": [{"role": "user", "content": "Capital of Spain?"}],
                "completion": [{"role": "assistant", "content": "Madrid."}],
            },
        ],
    ),
    "text": ("text", [{"text": "Once upon a time there was a tiny model."}, {"text": "It learned fast."}]),
}


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    suffix = path.suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_detects_every_format_in_every_file_type(tmp_path: Path, name: str, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow", reason="parquet needs pyarrow (the train extra)")
    expected, rows = CORPUS[name]
    report = DatasetValidator().validate_dataset(str(write(tmp_path / f"{name}{suffix}", rows)))
    assert isinstance(report, DatasetReport)
    assert report.format == expected and report.format_detected
    assert report.num_rows == report.usable_rows == len(rows) and report.skipped_rows == 0
    assert report.token_stats is not None and report.token_stats.method == "estimate"
    assert report.stats is not None and report.stats.rows == len(rows)
    assert report.stats.total_tokens == report.token_stats.total_counted  # every row counted: exact


def test_csv_alpaca(tmp_path: Path) -> None:
    report = DatasetValidator().validate_dataset(str(write(tmp_path / "a.csv", CORPUS["alpaca"][1])))
    assert report.format == "alpaca" and report.usable_rows == 3


@pytest.mark.needs_train
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_trainer_agrees(tmp_path: Path, name: str) -> None:
    from vibeml.trainer.data import load_training_dataset

    path = write(tmp_path / f"{name}.jsonl", CORPUS[name][1])
    report = DatasetValidator().validate_dataset(str(path))
    prepared = load_training_dataset(str(path))
    assert (prepared.format, prepared.num_rows, prepared.skipped) == (
        report.format,
        report.usable_rows,
        report.skipped_rows,
    )


def test_wrong_columns_name_found_and_expected(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}])
    with pytest.raises(DatasetError) as err:
        DatasetValidator().validate_dataset(str(path))
    assert err.value.context["columns_found"] == ["answer", "question"]
    assert set(err.value.context["columns_expected"]) == {"alpaca", "messages", "sharegpt", "prompt_completion", "text"}
    assert "question" in err.value.message and "instruction" in err.value.message
    assert "--column-mapping question=instruction,answer=output" in (err.value.recovery_suggestion or "")
    report = DatasetValidator().validate_dataset(
        str(path), column_mapping={"question": "instruction", "answer": "output"}
    )
    assert report.format == "alpaca" and report.usable_rows == 2
    assert report.column_mapping == {"question": "instruction", "answer": "output"}


def test_explicit_format_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", CORPUS["text"][1])
    with pytest.raises(DatasetError) as err:
        DatasetValidator().validate_dataset(str(path), dataset_format="alpaca")
    assert err.value.context["columns_found"] == ["text"] and "alpaca" in err.value.context["columns_expected"]
    report = DatasetValidator().validate_dataset(str(path), dataset_format="text")
    assert report.format == "text" and not report.format_detected


def test_bad_mappings(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a", "output": "x"}])
    with pytest.raises(DatasetError, match="does not have") as err:
        DatasetValidator().validate_dataset(str(path), column_mapping={"prompt": "instruction"})
    assert err.value.context["columns_missing"] == ["prompt"]
    with pytest.raises(DatasetError, match="duplicate"):
        DatasetValidator().validate_dataset(str(path), column_mapping={"answer": "output"})


def test_malformed_rows_are_counted(tmp_path: Path) -> None:
    rows = [*CORPUS["alpaca"][1], {"instruction": "", "output": "x"}, {"instruction": "y"}]
    report = DatasetValidator().validate_dataset(str(write(tmp_path / "m.jsonl", rows)))
    assert report.usable_rows == 3 and report.skipped_rows == 2 and report.num_rows == 5
    assert report.problems[0].startswith("row 4:") and report.stats is not None and report.stats.rows == 3
    assert any("malformed" in w for w in report.warnings)
    bad = [{"instruction": "", "output": ""}] * 3
    with pytest.raises(DatasetError, match="no usable rows"):
        DatasetValidator().validate_dataset(str(write(tmp_path / "bad.jsonl", bad)))


def test_unreadable_files(tmp_path: Path) -> None:
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2") as err:
        DatasetValidator().validate_dataset(str(broken))
    assert err.value.context["line"] == 2
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no rows"):
        DatasetValidator().validate_dataset(str(empty))
    scalar = tmp_path / "s.json"
    scalar.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(DatasetError, match="not a list of rows"):
        DatasetValidator().validate_dataset(str(scalar))
    with pytest.raises(DatasetError, match="not found"):
        DatasetValidator().validate_dataset(str(tmp_path / "missing.jsonl"))


def test_json_variants_and_folders(tmp_path: Path) -> None:
    columnar = tmp_path / "c.json"
    columnar.write_text(json.dumps({"text": ["a b", "c d", "e f"]}), encoding="utf-8")
    assert DatasetValidator().validate_dataset(str(columnar)).num_rows == 3
    lines_in_json = tmp_path / "l.json"
    lines_in_json.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    assert DatasetValidator().validate_dataset(str(lines_in_json)).num_rows == 2
    folder = tmp_path / "folder"
    write(folder / "part-1.jsonl", CORPUS["text"][1])
    write(folder / "part-2.jsonl", CORPUS["text"][1])
    report = DatasetValidator().validate_dataset(str(folder))
    assert report.num_rows == 4 and len(report.files) == 2


def test_row_limits_and_long_rows(tmp_path: Path) -> None:
    rows = [{"text": "word " * (i % 50 + 1)} for i in range(300)]
    report = DatasetValidator(max_rows=100, token_sample=40).validate_dataset(
        str(write(tmp_path / "big.jsonl", rows)), max_seq_length=20
    )
    assert report.num_rows == 300 and report.rows_checked == 100 and report.token_stats is not None
    assert report.token_stats.rows_counted == 40 and report.token_stats.rows_over_max_seq_length
    assert report.stats is not None and report.stats.rows == 300 and report.stats.total_tokens is None
    assert any("checked the first 100 of 300" in w for w in report.warnings)


@pytest.mark.needs_train
def test_tokens_with_the_models_tokenizer(demo_assets_dir: Path) -> None:
    dataset = demo_assets_dir / "demo_dataset.jsonl"
    model = str(demo_assets_dir / "tiny-llama")
    counted = DatasetValidator(token_sample=200).validate_dataset(str(dataset), model=model, max_seq_length=64)
    assert counted.token_stats is not None and counted.token_stats.method == "tokenizer"
    assert counted.token_stats.tokenizer == str(demo_assets_dir / "tiny-llama")
    assert 5 < counted.token_stats.mean < 64 and counted.token_stats.rows_over_max_seq_length == 0
    estimated = DatasetValidator(token_sample=200).validate_dataset(str(dataset), model="/no/such/model")
    assert estimated.token_stats is not None and estimated.token_stats.method == "estimate"
    assert any("could not be loaded" in w for w in estimated.warnings)


def test_service_dataset_stats_reads_every_format(tmp_path: Path) -> None:
    stats = dataset_stats(str(write(tmp_path / "a.csv", CORPUS["alpaca"][1])))
    assert stats is not None and stats.rows == 3 and stats.mean_tokens_per_row and stats.mean_tokens_per_row > 1
    assert dataset_stats("tatsu-lab/alpaca") is None  # no network while planning
    odd = write(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    fallback = dataset_stats(str(odd))  # rejected by the check: raw line lengths, as before
    assert fallback is not None and fallback.rows == 1


# ---------------------------------------------------------------------------------------------- hub


def test_hub_dataset(hub: FakeHub) -> None:
    hub.add_dataset(
        "acme/chat",
        {
            "README.md": "---\nlicense: cc-by-4.0\n---\n",
            "data/train-00000-of-00001.jsonl": "".join(json.dumps(r) + "\n" for r in CORPUS["openai_messages"][1] * 5),
            "data/test-00000-of-00001.jsonl": json.dumps(CORPUS["text"][1][0]) + "\n",
        },
        license="cc-by-4.0",
    )
    report = DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset("acme/chat")
    assert report.source == "hub" and report.format == "messages" and report.num_rows == 10
    assert report.files == ["data/train-00000-of-00001.jsonl"] and report.license == "cc-by-4.0"
    assert report.url == "https://huggingface.co/datasets/acme/chat" and not report.gated
    test_split = DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset(
        "acme/chat", split="test"
    )
    assert test_split.format == "text" and test_split.num_rows == 1


@pytest.mark.needs_train
def test_hub_parquet_dataset_and_budget(hub: FakeHub) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {}
    for i in range(3):
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(CORPUS["alpaca"][1] * 10), buf)
        files[f"data/train-0000{i}-of-00003.parquet"] = buf.getvalue()
    hub.add_dataset("acme/pq", files)
    report = DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset("acme/pq")
    assert report.format == "alpaca" and report.num_rows == 90 and report.num_rows_exact
    assert any(r.server == "cdn" for r in hub.requests)  # parquet is LFS: fetched from the CDN
    small = DatasetValidator(settings=Settings.from_env(), endpoint=hub.url, download_budget=1).validate_dataset(
        "acme/pq"
    )
    assert small.num_rows == 90 and not small.num_rows_exact and len(small.files) == 1
    assert any("extrapolated" in w for w in small.warnings)


def test_hub_dataset_errors(hub: FakeHub, tokens: dict[str, str]) -> None:
    hub.add_dataset(
        "acme/gated", {"train.jsonl": json.dumps({"text": "x"}) + "\n"}, gated="manual", allowed_tokens={tokens["good"]}
    )
    hub.add_dataset(
        "acme/private", {"train.jsonl": json.dumps({"text": "x"}) + "\n"}, private=True, allowed_tokens={tokens["good"]}
    )
    hub.add_dataset("acme/script", {"script.py": "print(1)", "README.md": "hi"})
    with pytest.raises(DatasetError) as missing:
        DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset("acme/nothing")
    assert "not found" in missing.value.message and "tatsu-lab/alpaca" in (missing.value.recovery_suggestion or "")
    with pytest.raises(CredentialError) as gated:
        DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset("acme/gated")
    assert "https://huggingface.co/datasets/acme/gated" in (gated.value.recovery_suggestion or "")
    with pytest.raises(CredentialError, match="no access"):
        DatasetValidator(settings=Settings.from_env(), endpoint=hub.url, token=tokens["other"]).validate_dataset(
            "acme/gated"
        )
    ok = DatasetValidator(settings=Settings.from_env(), endpoint=hub.url, token=tokens["good"]).validate_dataset(
        "acme/gated"
    )
    assert ok.gated and ok.num_rows == 1
    with pytest.raises(DatasetError, match="private"):
        DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset("acme/private")
    assert (
        DatasetValidator(settings=Settings.from_env(), endpoint=hub.url, token=tokens["good"])
        .validate_dataset("acme/private")
        .private
    )
    with pytest.raises(DatasetError, match=r"no \.jsonl"):
        DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset("acme/script")


def test_hub_dataset_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the settings' switch alone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError) as err:
        DatasetValidator(settings=Settings.from_env()).validate_dataset("acme/chat")
    assert "HF_HUB_OFFLINE" in err.value.message


@pytest.mark.needs_train
def test_tokenizer_from_the_hub(hub: FakeHub, demo_assets_dir: Path, tmp_path: Path) -> None:
    model_dir = demo_assets_dir / "tiny-llama"
    hub.add_model("acme/tiny-llama", {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()})
    data = write(tmp_path / "d.jsonl", CORPUS["openai_messages"][1])
    report = DatasetValidator(settings=Settings.from_env(), endpoint=hub.url).validate_dataset(
        str(data), model="acme/tiny-llama"
    )
    assert report.token_stats is not None and report.token_stats.method == "tokenizer"
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.requests if "/resolve/" in r.path}
    assert "tokenizer.json" in fetched and "model.safetensors" not in fetched  # weights are never downloaded
