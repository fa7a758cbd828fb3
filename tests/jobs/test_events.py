from __future__ import annotations

import json
import math
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibeml.jobs.progress import progress_from_events
from vibeml.trainer.events import (
    ECHO_PREFIX,
    CheckpointEvent,
    CheckpointSkippedEvent,
    DoneEvent,
    ErrorEvent,
    EvalEvent,
    EventWriter,
    OomRetryEvent,
    SampleEvent,
    ScoreEvent,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainerEvent,
    context_text,
    dump_event,
    parse_event,
    parse_event_lines,
    read_events,
)

#: One of each kind, every field set: what the trainer writes.
ONE_OF_EACH: list[TrainerEvent] = [
    StartEvent(
        model="Qwen/Qwen2.5-0.5B",
        dataset="data/train.jsonl",
        method="qlora",
        device="cuda",
        max_steps=10,
        num_examples=40,
        resumed_from="/c/checkpoint-4",
        dataset_format="alpaca",
        skipped_rows=2,
        dtype="bfloat16",
        trainable_params=1_000,
        total_params=500_000_000,
        engine="transformers",
        attn_implementation="sdpa",
        gradient_checkpointing=True,
        checkpoint_every_n_layers=2,
        use_liger_kernel=False,
        packing=True,
        batch_size=4,
        gradient_accumulation_steps=2,
    ),
    StepEvent(
        step=5,
        max_steps=10,
        epoch=0.5,
        loss=2.25,
        learning_rate=2e-4,
        tokens_per_s=1234.5,
        eta_seconds=9.0,
        elapsed_seconds=3.5,
    ),
    EvalEvent(
        step=5,
        loss=2.5,
        perplexity=12.18,
        mean_token_accuracy=0.5,
        num_examples=8,
        runtime_seconds=0.4,
        elapsed_seconds=3.9,
    ),
    SampleEvent(phase="before", prompt='2+2? "quoted"\nnext line \u2028 é', completion="zz"),
    ScoreEvent(phase="after", correct=57, total=60, seconds=0.4),
    CheckpointEvent(step=5, path="/c/checkpoint-5"),
    OomRetryEvent(
        attempt=1,
        step=0,
        message="CUDA out of memory. Tried to allocate 2.00 GiB",
        failed_batch_size=8,
        failed_gradient_accumulation_steps=1,
        failed_gradient_checkpointing=True,
        failed_checkpoint_every_n_layers=2,
        next_batch_size=4,
        next_gradient_accumulation_steps=2,
        next_gradient_checkpointing=True,
        estimated_gib=70.5,
        capacity_gib=79.6,
        peak_gib=78.9,
        underestimate_at_least=1.129,
    ),
    CheckpointSkippedEvent(path="/c/checkpoint-10", reason="no trainer_state.json", resumed_from="/c/checkpoint-5"),
    DoneEvent(
        output_dir="/o",
        step=10,
        first_loss=5.0,
        final_loss=1.5,
        elapsed_seconds=12.0,
        merged_dir="/o/merged",
        final_eval_loss=2.0,
        best_eval_loss=1.9,
        best_checkpoint="/c/checkpoint-8",
    ),
    StoppedEvent(reason="sigterm", step=7, checkpoint="/c/checkpoint-7", elapsed_seconds=8.0),
    ErrorEvent(
        message="CUDA out of memory",
        error_type="ResourceError",
        recovery_suggestion="Lower batch_size.",
        context={"batch_size": "8"},
    ),
]


_MEMBERS = typing.get_args(typing.get_args(TrainerEvent)[0])


def test_the_union_covers_every_event_model() -> None:
    kinds = {m.model_fields["event"].default for m in _MEMBERS}
    assert kinds == {e.event for e in ONE_OF_EACH} and len(ONE_OF_EACH) == len(_MEMBERS)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.event)
def test_writer_to_reader_round_trip(event: TrainerEvent, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each kind, through the file (``read_events``) and through a log (``parse_event_lines``), reads back equal."""
    path = tmp_path / "events.jsonl"
    assert EventWriter(path, echo=True).emit(event) is event
    text = path.read_text(encoding="utf-8")
    assert text.isascii() and text.count("\n") == 1 and len(text.splitlines()) == 1  # nothing can split it
    assert json.loads(text)["event"] == event.event and next(iter(json.loads(text))) == "event"
    assert list(read_events(path)) == [event]
    echoed = capsys.readouterr().out
    assert echoed == ECHO_PREFIX + text
    assert list(parse_event_lines(["noise", "2026-01-01 12:00:00 " + echoed.rstrip("\n")])) == [event]
    assert parse_event(dump_event(event)) == event


def test_torn_corrupt_and_unknown_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "e" / "events.jsonl"
    w = EventWriter(path, echo=False)
    w.emit(StartEvent(model="m", dataset="d", method="lora", device="cpu", max_steps=3))
    w.emit(StepEvent(step=1, loss=float("nan")))
    with open(path, "a") as fh:
        fh.write("{not json}\n")
        fh.write('{"event": "compile", "step": 1}\n')  # a kind this reader does not know
        fh.write('{"event": "step", "step": "2"}\n')  # the wrong type
        fh.write("[1, 2]\n\n")
        fh.write('{"event": "step", "step": 2')  # being written: no newline yet
    events = list(read_events(path))
    assert [e.event for e in events] == ["start", "step"]
    assert isinstance(events[1], StepEvent) and events[1].loss is None  # NaN is not JSON: recorded as unknown
    assert list(read_events(tmp_path / "missing.jsonl")) == []
    assert list(read_events(tmp_path)) == []  # a folder, not a file: nothing, not a crash


def test_echo_and_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = EventWriter(tmp_path / "events.jsonl", echo=True)
    w.emit(SampleEvent(phase="after", prompt='quote " and\nnewline', completion="ok"))
    out = capsys.readouterr().out
    assert out.startswith(ECHO_PREFIX)
    log = ["pip noise", "2026-11-23 10:00:00 " + out.strip(), ECHO_PREFIX + "{broken", ECHO_PREFIX + "[]", "other"]
    [ev] = list(parse_event_lines(log))
    assert isinstance(ev, SampleEvent) and ev.prompt == 'quote " and\nnewline'
    assert json.loads(out[len(ECHO_PREFIX) :])["event"] == "sample"


def test_only_rank_zero_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    w = EventWriter(tmp_path / "events.jsonl", echo=False)
    w.emit(StepEvent(step=1))
    assert not (tmp_path / "events.jsonl").exists()
    monkeypatch.setenv("RANK", "0")
    EventWriter(tmp_path / "events.jsonl", echo=False).emit(StepEvent(step=1))
    assert len(list(read_events(tmp_path / "events.jsonl"))) == 1


@pytest.mark.parametrize(
    "line",
    [
        '{"event": "step", "step": true}',  # true is not 1
        '{"event": "step", "step": 1.0}',  # a count is an int
        '{"event": "step", "step": -1}',
        '{"event": "step", "step": 1, "loss": "2.0"}',  # no coercion from text
        '{"event": "step", "step": 1, "loss": false}',
        '{"event": "checkpoint", "step": 1, "path": ""}',
        '{"event": "checkpoint", "step": 1, "path": 7}',
        '{"event": "sample", "phase": "during", "prompt": "p", "completion": "c"}',
        '{"event": "score", "phase": "after", "correct": 61, "total": 60}',  # more right than asked
        '{"event": "score", "phase": "after", "correct": 0, "total": 0}',
        '{"event": "score", "phase": "after", "correct": 1.0, "total": 2}',
        '{"event": "score", "phase": "during", "correct": 1, "total": 2}',
        '{"event": "start", "model": "m", "dataset": "d", "method": "dpo", "device": "cpu", "max_steps": 1}',
        '{"event": "done", "step": 3}',  # no output_dir
        '{"event": "stopped", "step": 3}',  # no reason
        '{"event": "error"}',  # no message
        '{"event": "step", "step": 1, "time": Infinity}',
        '{"step": 1}',
        '{"event": null}',
    ],
)
def test_wrong_shapes_are_not_events(line: str) -> None:
    assert parse_event(line) is None


def test_non_finite_metrics_are_unknown_and_extra_fields_are_ignored() -> None:
    ev = parse_event('{"event": "step", "step": 2, "loss": NaN, "epoch": Infinity, "lr_new_field": 1, "time": 5}')
    assert ev == StepEvent(step=2, time=5.0)
    assert StepEvent(step=1, loss=math.inf, tokens_per_s=-math.inf).loss is None
    with pytest.raises(ValueError):
        StepEvent(step=True)  # type: ignore[arg-type]  # the writer gets the same refusal
    with pytest.raises(ValueError):
        CheckpointEvent(step=1, path=Path("/c"))  # type: ignore[arg-type]


def test_error_context_is_text() -> None:
    ctx = context_text({"fields": ["a", "b"], "n": 3, "path": "/x", "bad": float("nan"), "obj": Path("/p")})
    assert ctx == {"fields": '["a", "b"]', "n": "3", "path": "/x", "bad": "nan", "obj": '"/p"'}
    assert ErrorEvent(message="m", context=ctx).context == ctx
    # an older writer's context (JSON values, not text) still reads, as text; junk context reads as none
    old = parse_event('{"event": "error", "message": "m", "context": {"lora_target_modules": ["x_proj"]}}')
    assert isinstance(old, ErrorEvent) and old.context == {"lora_target_modules": '["x_proj"]'}
    junk = parse_event('{"event": "error", "message": "m", "context": [1]}')
    assert isinstance(junk, ErrorEvent) and junk.context == {}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_text = st.text(max_size=12)
#: A value of the right type for each field name (the strategy below mixes in junk of any JSON type).
_VALID = {
    "step": st.integers(0, 10**6),
    "max_steps": st.none() | st.integers(0, 10**6),
    "num_examples": st.none() | st.integers(-5, 10**6),
    "loss": st.none() | st.floats(),
    "epoch": st.none() | st.floats(),
    "time": st.floats(),
    "path": _text,
    "phase": st.sampled_from(["before", "after"]),
    "prompt": _text,
    "completion": _text,
    "output_dir": _text,
    "reason": _text,
    "message": _text,
    "model": _text,
    "dataset": _text,
    "method": st.sampled_from(["lora", "qlora", "full"]),
    "device": _text,
    "context": st.dictionaries(_text, _json, max_size=3),
    "checkpoint": st.none() | _text,
    "attempt": st.integers(0, 5),
    "failed_batch_size": st.integers(0, 64),
    "failed_gradient_accumulation_steps": st.integers(0, 64),
    "failed_gradient_checkpointing": st.booleans(),
    "next_batch_size": st.integers(0, 64),
    "next_gradient_accumulation_steps": st.integers(0, 64),
    "correct": st.integers(-1, 70),
    "total": st.integers(-1, 70),
}
_KINDS = {m.model_fields["event"].default: m for m in _MEMBERS}


def _value(name: str) -> st.SearchStrategy[object]:
    return st.one_of(_VALID[name], _VALID[name], _json)


def _shaped(kind: str) -> st.SearchStrategy[dict[str, object]]:
    model = _KINDS.get(kind)
    required = [n for n, f in model.model_fields.items() if f.is_required()] if model else []
    return st.fixed_dictionaries(
        {n: _value(n) for n in required}, optional={n: _value(n) for n in _VALID if n not in required}
    ).map(lambda fields: {"event": kind, **fields})


_event_shaped = st.sampled_from([*_KINDS, "compile", "", "Step"]).flatmap(_shaped)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("utf-8", "replace"))))
def test_arbitrary_lines_never_raise(line: str) -> None:
    ev = parse_event(line)
    assert ev is None or isinstance(ev, _MEMBERS)
    assert list(parse_event_lines([line, ECHO_PREFIX + line])) == ([] if ev is None or "\n" in line else [ev])


@settings(max_examples=400, deadline=None)
@given(st.lists(_event_shaped, max_size=6))
def test_arbitrary_event_shaped_objects_never_raise_and_fold(objects: list[dict[str, object]]) -> None:
    """Objects shaped like events, some fields of the right type and some junk: each reads as its own kind
    or not at all, what reads writes back the same, and any stream of them folds."""
    events = []
    for obj in objects:
        ev = parse_event(json.dumps(obj))
        if ev is not None:
            assert ev.event == obj["event"]
            assert parse_event(dump_event(ev)) == ev
            events.append(ev)
    progress_from_events(events, alive=False)
    progress_from_events(events, alive=True)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_files_never_raise(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("ev") / "events.jsonl"
    path.write_bytes(data)
    events = list(read_events(path))
    progress_from_events(events, alive=False)
