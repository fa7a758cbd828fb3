"""Check before renting: every launch the local inputs already doom is refused before any paid call.

Each refused case runs the real service with the real Vast backend against the fake Vast server: the
launch makes zero offer searches and zero create requests, and the preview raises the same error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import make_service
from vibeml.cli.main import app
from vibeml.client import build_request
from vibeml.exceptions import DatasetError, ModelNotFoundError, ValidationError, VibeMLError
from vibeml.inputs import split_names
from vibeml.testing.fake_hub import FakeHub
from vibeml.testing.fake_vast import FakeVast

fake = support.fake  # the fixtures: the fake Vast server, and VibeML pointed at it
vast_env = support.vast_env

ROWS = [{"instruction": f"say {i}", "output": f"{i}"} for i in range(8)]
CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 256,
    "max_position_embeddings": 128,
}


def _model(root: Path, config: dict[str, Any] | str = CONFIG) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(config if isinstance(config, str) else json.dumps(config), encoding="utf-8")
    return str(root)


def _jsonl(path: Path, rows: list[dict[str, Any]] = ROWS) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _refused_before_any_paid_call(fake: FakeVast, request_fields: dict[str, Any], error: type[VibeMLError]) -> str:
    svc, _ = make_service(fake)
    request = build_request(backend="vast", max_cost=5.0, max_steps=2, **request_fields)
    with pytest.raises(error) as previewed:
        svc.preview_launch(request)
    with pytest.raises(error) as launched:
        svc.launch(request)
    assert launched.value.message == previewed.value.message
    assert launched.value.recovery_suggestion
    assert fake.count("create") == 0 and fake.count("search") == 0
    assert svc.store.list_jobs() == []
    return f"{launched.value.message} | {launched.value.recovery_suggestion}"


def test_the_control_a_good_request_reaches_the_market(vast_env: FakeVast, tmp_path: Path) -> None:
    """Without it the zero counts below could come from a launch that never asks the fake anything."""
    svc, _ = make_service(vast_env)
    request = build_request(
        model=_model(tmp_path / "model"), dataset=_jsonl(tmp_path / "d.jsonl"), backend="vast", max_cost=5.0,
        max_steps=2, dataset_split="train[:4]",
    )  # fmt: skip
    svc.preview_launch(request)
    assert vast_env.count("search") > 0 and vast_env.count("create") == 0


@pytest.mark.parametrize(
    ("case", "error", "needle"),
    [
        ("split of a file", DatasetError, "has no split 'test'"),
        ("split of a folder", DatasetError, "has no split 'validation'"),
        ("not a split", DatasetError, "is not a dataset split"),
        ("config of local files", DatasetError, "have no configs"),
        ("columns", DatasetError, "--column-mapping"),
        ("mapped column missing", DatasetError, "does not have"),
        ("format without its columns", DatasetError, "messages"),
        ("model without model_type", ModelNotFoundError, "names no model_type"),
        ("model config without sizes", ModelNotFoundError, "not a usable model directory"),
        ("model config not JSON", ModelNotFoundError, "not a usable model directory"),
    ],
)
def test_local_inputs_are_refused_before_renting(
    vast_env: FakeVast, tmp_path: Path, case: str, error: type[VibeMLError], needle: str
) -> None:
    model = _model(tmp_path / "model")
    data = _jsonl(tmp_path / "d.jsonl")
    fields: dict[str, Any] = {"model": model, "dataset": data}
    if case == "split of a file":
        fields["dataset_split"] = "test"
    elif case == "split of a folder":
        folder = tmp_path / "folder"
        _jsonl(folder / "a.jsonl")
        _jsonl(folder / "b.jsonl")
        fields.update(dataset=str(folder), dataset_split="train+validation")
    elif case == "not a split":
        fields["dataset_split"] = "train[:10"
    elif case == "config of local files":
        fields["dataset_config"] = "en"
    elif case == "columns":
        fields["dataset"] = _jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}] * 4)
    elif case == "mapped column missing":
        fields["column_mapping"] = {"prompt_text": "instruction"}
    elif case == "format without its columns":
        fields["dataset_format"] = "messages"
    elif case == "model without model_type":
        fields["model"] = _model(tmp_path / "m2", {k: v for k, v in CONFIG.items() if k != "model_type"})
    elif case == "model config without sizes":
        fields["model"] = _model(tmp_path / "m2", {"model_type": "llama"})
    else:
        fields["model"] = _model(tmp_path / "m2", "{not json")
    message = _refused_before_any_paid_call(vast_env, fields, error)
    assert needle in message


def test_a_hub_split_the_hub_does_not_have_is_refused_before_renting(
    vast_env: FakeVast, hub: FakeHub, tmp_path: Path
) -> None:
    rows = "".join(json.dumps(r) + "\n" for r in ROWS)
    hub.add_dataset("org/plain", {"data/train-00000.jsonl": rows, "data/test-00000.jsonl": rows})
    hub.add_dataset(
        "org/configured",
        {"en/a.jsonl": rows, "fr/b.jsonl": rows},
        card_data={
            "configs": [
                {"config_name": "en", "data_files": [{"split": "train", "path": "en/a.jsonl"}], "default": True},
                {"config_name": "fr", "data_files": [{"split": "dev", "path": "fr/b.jsonl"}]},
            ]
        },
    )
    model = _model(tmp_path / "model")
    message = _refused_before_any_paid_call(
        vast_env, {"model": model, "dataset": "org/plain", "dataset_split": "validation"}, DatasetError
    )
    assert "has no split 'validation'" in message and "'test', 'train'" in message
    message = _refused_before_any_paid_call(
        vast_env, {"model": model, "dataset": "org/configured", "dataset_config": "de"}, DatasetError
    )
    assert "no config 'de'" in message
    message = _refused_before_any_paid_call(
        vast_env, {"model": model, "dataset": "org/configured", "dataset_config": "fr"}, DatasetError
    )
    assert "has no split 'train'" in message and "'dev'" in message
    _refused_before_any_paid_call(vast_env, {"model": model, "dataset": "org/missing"}, DatasetError)

    svc, _ = make_service(vast_env)  # the splits that exist pass, and the launch goes on to the market
    for dataset, split, config in (("org/plain", "test[:4]", None), ("org/configured", "dev", "fr")):
        request = build_request(
            model=model, dataset=dataset, dataset_split=split, dataset_config=config, backend="vast",
            max_cost=5.0, max_steps=2,
        )  # fmt: skip
        svc.preview_launch(request)
    assert vast_env.count("search") > 0 and vast_env.count("create") == 0


def test_offline_the_hub_is_not_asked(vast_env: FakeVast, tmp_path: Path) -> None:
    """HF_HUB_OFFLINE (the test default): a hub dataset's split cannot be checked here, so it is not refused."""
    svc, _ = make_service(vast_env)
    request = build_request(
        model=_model(tmp_path / "model"), dataset="org/anything", dataset_split="validation", backend="vast",
        max_cost=5.0, max_steps=2,
    )  # fmt: skip
    assert svc.preview_launch(request).request.dataset_split == "validation"


def test_contradictory_options_are_refused_before_renting(vast_env: FakeVast, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        build_request(model="m/x", dataset="d/x", backend="vast", max_cost=5.0, max_steps=5, num_epochs=1)
    res = CliRunner().invoke(
        app,
        ["launch", "--model", _model(tmp_path / "model"), "--dataset", _jsonl(tmp_path / "d.jsonl"),
         "--backend", "vast", "--max-cost", "5", "--max-steps", "5", "--epochs", "1"],
    )  # fmt: skip
    err = " ".join(res.stderr.split())
    assert res.exit_code == 2 and "not both" in err and "What to do:" in err
    assert vast_env.count("create") == 0 and vast_env.count("search") == 0


def test_cli_bad_split_exit_code_and_no_rental(vast_env: FakeVast, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["launch", "--model", _model(tmp_path / "model"), "--dataset", _jsonl(tmp_path / "d.jsonl"),
         "--backend", "vast", "--max-cost", "5", "--max-steps", "5", "--dataset-split", "validation"],
    )  # fmt: skip
    assert res.exit_code == 3, (res.stdout, res.stderr)
    err = " ".join(res.stderr.split())
    assert "has no split 'validation'" in err and "What to do: Set --dataset-split to one of train" in err
    assert "Traceback" not in res.stdout + res.stderr
    assert vast_env.count("create") == 0 and vast_env.count("search") == 0


@pytest.mark.parametrize(
    ("split", "names"),
    [("train", ["train"]), ("train[:100]", ["train"]), ("train[10%:]+test", ["train", "test"])],
)
def test_split_names(split: str, names: list[str]) -> None:
    assert split_names(split) == names
