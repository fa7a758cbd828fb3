"""What makes a checkpoint complete, and which one a run resumes from (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

from vibeml.trainer.checkpoints import MARKER, checkpoint_problem, find_resume_point, write_marker


def _checkpoint(root: Path, step: int, *, marker: bool = True, weights: bool = True) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / "adapter_model.safetensors").write_bytes(b"w" * 100)
    (path / "optimizer.pt").write_bytes(b"o" * 50)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": [{"loss": 1.0}]}))
    if marker:
        write_marker(path, step)
    return path


def test_a_marked_checkpoint_is_complete_until_a_file_changes(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 10)
    assert checkpoint_problem(path) is None
    data = json.loads((path / MARKER).read_text())
    assert data["step"] == 10 and data["files"]["trainer_state.json"] > 0 and MARKER not in data["files"]

    state = path / "trainer_state.json"
    text = state.read_text()
    state.write_text(text[: len(text) // 2])  # torn
    assert "trainer_state.json is not readable JSON" in (checkpoint_problem(path) or "")

    state.write_text(text)
    (path / "adapter_model.safetensors").write_bytes(b"w" * 10)  # a half-copied weights file
    assert checkpoint_problem(path) == "adapter_model.safetensors has 10 bytes, not the 100 saved"
    (path / "adapter_model.safetensors").unlink()
    assert checkpoint_problem(path) == "adapter_model.safetensors is missing"


def test_marker_must_name_the_folder_step_and_be_json(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 4)
    (path / MARKER).write_text(json.dumps({"step": 5, "files": {"optimizer.pt": 50}}))
    assert "names step 5, not 4" in (checkpoint_problem(path) or "")
    (path / MARKER).write_text("{")
    assert checkpoint_problem(path) == f"{MARKER} is not readable JSON"


def test_unmarked_checkpoints_of_older_runs_are_checked_as_the_trainer_writes_them(tmp_path: Path) -> None:
    assert checkpoint_problem(_checkpoint(tmp_path, 1, marker=False)) is None
    assert checkpoint_problem(_checkpoint(tmp_path, 2, marker=False, weights=False)) == "no weights"
    bare = tmp_path / "checkpoint-3"
    bare.mkdir()
    (bare / "model.safetensors").write_bytes(b"x")
    assert checkpoint_problem(bare) == "no trainer_state.json"  # killed before the Trainer finished saving


def test_the_newest_complete_checkpoint_is_chosen_and_the_torn_ones_named(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 5)
    good = _checkpoint(tmp_path, 10)
    torn = _checkpoint(tmp_path, 15)
    (torn / "trainer_state.json").write_text('{"global_step": 1')
    partial = _checkpoint(tmp_path, 20, marker=False)
    (partial / "trainer_state.json").unlink()
    (tmp_path / "checkpoint-99").write_text("a file, not a folder")
    (tmp_path / "checkpoint-x").mkdir()
    point = find_resume_point(tmp_path)
    assert point.checkpoint == good and point.step == 10
    assert [p.name for p, _ in point.skipped] == ["checkpoint-20", "checkpoint-15"]
    assert point.notes()[1].startswith("checkpoint checkpoint-15 is incomplete (trainer_state.json is not readable")
    assert point.notes()[1].endswith("resuming from checkpoint-10")
    assert find_resume_point(tmp_path / "missing").checkpoint is None


def test_write_marker_refuses_an_unfinished_save(tmp_path: Path) -> None:
    import pytest

    path = tmp_path / "checkpoint-1"
    path.mkdir()
    with pytest.raises(ValueError, match=r"no trainer_state\.json"):
        write_marker(path, 1)
    assert not (path / MARKER).exists()
