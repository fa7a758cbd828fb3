from __future__ import annotations

import json
from pathlib import Path

import pytest

from vibeml.trainer.events import ECHO_PREFIX, EventWriter, parse_event_lines, read_events


def test_write_read_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "e" / "events.jsonl"
    w = EventWriter(path, echo=False)
    w.emit("start", max_steps=3)
    w.emit("step", step=1, loss=float("nan"))
    with open(path, "a") as fh:
        fh.write("{not json}\n")
        fh.write('{"event": "step", "step": 2')  # being written: no newline yet
    events = list(read_events(path))
    assert [e["event"] for e in events] == ["start", "step"]
    assert events[1]["loss"] is None  # NaN is not JSON
    assert list(read_events(tmp_path / "missing.jsonl")) == []


def test_echo_and_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = EventWriter(tmp_path / "events.jsonl", echo=True)
    w.emit("step", step=4, loss=1.5, note='quote " and\nnewline')
    out = capsys.readouterr().out
    assert out.startswith(ECHO_PREFIX)
    log = ["pip noise", "2026-11-23 10:00:00 " + out.strip(), ECHO_PREFIX + "{broken", "other"]
    [ev] = list(parse_event_lines(log))
    assert ev["step"] == 4 and ev["note"] == 'quote " and\nnewline'
    assert json.loads(out[len(ECHO_PREFIX) :])["event"] == "step"


def test_only_rank_zero_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    w = EventWriter(tmp_path / "events.jsonl", echo=False)
    w.emit("step", step=1)
    assert not (tmp_path / "events.jsonl").exists()
    monkeypatch.setenv("RANK", "0")
    EventWriter(tmp_path / "events.jsonl", echo=False).emit("step", step=1)
    assert len(list(read_events(tmp_path / "events.jsonl"))) == 1
