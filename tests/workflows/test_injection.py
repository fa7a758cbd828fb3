"""An injection corpus in every user field of every workflow: values arrive as the same strings, nothing runs.

Each payload tries to escape into code (Python string literals, shell, Jinja, format strings) and would
create a canary file if it ever ran. Fields that refuse control or invisible characters (ids, paths)
must refuse them with a ValidationError; everything they accept must come back unchanged, from the
trainer's JSON config and from the generated script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from vibeml.exceptions import ValidationError
from vibeml.models import TrainingRequest
from vibeml.trainer.config import load_config
from vibeml.trainer.events import ErrorEvent, read_events
from vibeml.workflows import render_program
from vibeml.workflows.script import ScriptGenerator, decode_script_config

WORKFLOWS = ("trl-lora", "qlora", "full", "unsloth")
SRC = Path(__file__).resolve().parents[2] / "src"

RAW_CORPUS = [
    'say "hi"',
    "it's",
    '"""',
    "'''",
    "back\\slash",
    "\\",
    "ends with \\",
    "\\x00 \\u202e \\n",
    "line1\nline2",
    "cr\r\nlf",
    "tab\there",
    "__import__('os').system('touch CANARY')",
    '"); __import__("os").system("touch CANARY"); ("',
    "'''); __import__('os').system('touch CANARY'); ('''",
    '"""+__import__("os").system("touch CANARY")+"""',
    "$(touch CANARY)",
    "`touch CANARY`",
    "; touch CANARY #",
    "&& touch CANARY",
    "| touch CANARY",
    "{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
    "{% for x in [1] %}{{ x }}{% endfor %}",
    "${HOME}",
    "%(x)s %s",
    "{0} {}",
    "#!/bin/sh",
    "\u202eevil\u202c reversed",
    "zero\u200bwidth\u200d",
    "\u0397\u0435\u006c\u006c\u043e homoglyphs",
    "nul\x00byte",
    "sep\u2028\u2029",
    "emoji 😀",
    "a" * 3000,
]


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "CANARY-FILE"


@pytest.fixture
def corpus(canary: Path) -> list[str]:
    return [p.replace("CANARY", str(canary)) for p in RAW_CORPUS]


def request_or_none(**fields: Any) -> TrainingRequest | None:
    try:
        return TrainingRequest.model_validate({"model": "acme/model", "dataset": "data.jsonl", **fields})
    except PydanticValidationError:
        return None


def field_cases(corpus: list[str]) -> list[tuple[str, dict[str, Any], Any]]:
    """(field, request fields, how to read the value back from a trainer config dict)."""
    cases: list[tuple[str, dict[str, Any], Any]] = []
    for p in corpus:
        cases += [
            ("model", {"model": p}, lambda c: c["model"]),
            ("dataset", {"dataset": p}, lambda c: c["dataset"]),
            ("output_dir", {"output_dir": p}, lambda c: c["output_dir"]),
            ("dataset_split", {"dataset_split": p}, lambda c: c["dataset_split"]),
            ("dataset_config", {"dataset_config": p}, lambda c: c["dataset_config"]),
            ("sample_prompts", {"sample_prompts": [p]}, lambda c: c["sample_prompts"][0]),
            (
                "lora_target_modules",
                {"lora_target_modules": [p]},
                lambda c: c["hyperparameters"]["lora_target_modules"][0],
            ),
        ]
    return cases


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_trainer_config_round_trip(workflow: str, corpus: list[str], canary: Path, tmp_path: Path) -> None:
    accepted = refused = 0
    for field, fields, read in field_cases(corpus):
        value = fields[field][0] if isinstance(fields[field], list) else fields[field]
        request = request_or_none(workflow=workflow, **fields)
        if request is None:
            refused += 1
            assert field != "sample_prompts" or not value.strip(), value  # prompts accept any text
            continue
        accepted += 1
        out = request.output_dir or "/out"
        prog = render_program(request, "job", output_dir=out, checkpoint_dir="/ckpt", events_path="/ev.jsonl")
        path = tmp_path / "config.json"
        path.write_text(prog.config_json(), encoding="utf-8")
        loaded = load_config(path).model_dump(mode="json")
        assert read(loaded) == value, (field, value)
        assert prog.argv("python", path) == ["python", "-m", "vibeml.trainer", "--config", str(path)]
        for backend in ("local", "vast", "skypilot"):
            assert not any(value in cmd for cmd in prog.setup_for(backend) if len(value) > 3)
    assert accepted > len(corpus) * 2 and refused > 0  # prompts take everything; ids refuse control characters
    assert not canary.exists()


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_script_round_trip(workflow: str, corpus: list[str], canary: Path) -> None:
    gen = ScriptGenerator()
    for field, fields, read in field_cases(corpus):
        value = fields[field][0] if isinstance(fields[field], list) else fields[field]
        model, dataset = fields.pop("model", "acme/model"), fields.pop("dataset", "data.jsonl")
        try:
            script = gen.generate_script(workflow, model, dataset, **fields)
        except ValidationError:
            assert request_or_none(model=model, dataset=dataset, **fields) is None
            continue
        assert read(decode_script_config(script)) == value, (field, value)  # render() compiled it
        if str(canary) in value:
            assert str(canary) not in script  # the payload exists only inside the base64 literal
    for p in corpus:  # column names are free text too
        cfg = decode_script_config(gen.generate_script(workflow, "acme/model", "d.jsonl", column_mapping={p: p + "x"}))
        assert cfg["column_mapping"] == {p: p + "x"}
    assert not canary.exists()


def _accepted(corpus: list[str], field: str) -> list[str]:
    return [p for p in corpus if request_or_none(**{field: p}) is not None]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_generated_scripts_print_the_same_strings(
    workflow: str, corpus: list[str], canary: Path, tmp_path: Path
) -> None:
    """The real script, as a process: ``--print-config`` shows every value unchanged; no payload runs."""
    prompts = _accepted(corpus, "sample_prompts")
    paths = _accepted(corpus, "output_dir")
    gen = ScriptGenerator()
    for i in range(0, len(prompts), 16):  # a request holds at most 16 prompts
        chunk = prompts[i : i + 16]
        dangerous = paths[(i // 16) % len(paths)]
        script = gen.generate_script(
            workflow,
            dangerous,
            dangerous,
            output_dir=dangerous,
            dataset_split=dangerous,
            sample_prompts=chunk,
            column_mapping={dangerous: "text"},
        )
        path = tmp_path / f"train-{i}.py"
        path.write_text(script, encoding="utf-8")
        out = subprocess.run(
            [sys.executable, str(path), "--print-config"], capture_output=True, timeout=60, cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr.decode()
        cfg = json.loads(out.stdout.decode("utf-8"))
        assert cfg["sample_prompts"] == chunk
        assert cfg["model"] == cfg["dataset"] == cfg["output_dir"] == cfg["dataset_split"] == dangerous
        assert cfg["column_mapping"] == {dangerous: "text"}
    assert not canary.exists()


def test_the_trainer_receives_the_same_strings(corpus: list[str], canary: Path, tmp_path: Path) -> None:
    """``python -m vibeml.trainer`` with payloads as the model and dataset: it fails cleanly, naming the
    exact strings it received, and runs none of them."""
    payloads = [p for p in _accepted(corpus, "model") if "CANARY" in p.replace(str(canary), "CANARY")]
    env = {"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for i, payload in enumerate(payloads[:6]):
        request = TrainingRequest(model=payload, dataset=payload, sample_prompts=[payload])
        work = tmp_path / f"job{i}"
        prog = render_program(
            request,
            "job",
            output_dir=str(work / "out"),
            checkpoint_dir=str(work / "ckpt"),
            events_path=str(work / "events.jsonl"),
        )
        work.mkdir()
        (work / "config.json").write_text(prog.config_json(), encoding="utf-8")
        out = subprocess.run(
            prog.argv(sys.executable, work / "config.json"),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=work,
            env=env,
        )
        assert out.returncode == 1, out.stderr
        *_, event = read_events(work / "events.jsonl")
        assert isinstance(event, ErrorEvent) and event.error_type == "ModelNotFoundError"
        assert repr(payload) in event.message and event.context["model"] == payload
    assert not canary.exists()
