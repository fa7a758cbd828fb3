from __future__ import annotations

from pathlib import Path

from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobProgress, JobStatus, TrainerEnd
from vibeml.trainer.events import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    SampleEvent,
    ScoreEvent,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainerEvent,
    read_events,
)

START = StartEvent(model="m", dataset="d", method="lora", device="cpu", max_steps=10)


def test_running_then_done() -> None:
    events: list[TrainerEvent] = [
        START,
        SampleEvent(phase="before", prompt="2+2?", completion="zz"),
        StepEvent(step=1, max_steps=10, loss=5.0, learning_rate=1e-3, eta_seconds=9),
        StepEvent(step=5, max_steps=10, loss=3.0, tokens_per_s=100.0),
        CheckpointEvent(step=5, path="/c/checkpoint-5"),
    ]
    p = progress_from_events(events, alive=True)
    assert p.status is JobStatus.RUNNING and p.trainer_end is None
    assert (p.step, p.max_steps, p.loss, p.first_loss) == (5, 10, 3.0, 5.0)
    assert p.learning_rate == 1e-3 and p.tokens_per_s == 100.0  # a step that leaves a metric out keeps the last
    assert p.last_checkpoint == "/c/checkpoint-5" and p.fraction_done == 0.5
    done = [*events, DoneEvent(output_dir="/o", step=10, final_loss=1.5, first_loss=5.0)]
    p = progress_from_events(done, alive=False)
    assert p.status is JobStatus.COMPLETED and p.trainer_end is TrainerEnd.DONE
    assert p.loss == 1.5 and p.output_dir == "/o" and p.eta_seconds == 0 and p.step == 10
    assert p.samples_before == [{"prompt": "2+2?", "completion": "zz"}] and p.samples_after == []


def test_held_out_scores_fold_before_and_after(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        '{"event": "score", "phase": "before", "correct": 0, "total": 60, "time": 1.0}',
        '{"event": "score", "phase": "after", "correct": 70, "total": 60, "time": 2.0}',  # not an event
        '{"event": "score", "phase": "after", "correct": 57, "total": 60, "time": 3.0}',
    ]
    path.write_text("\n".join(lines) + "\n")
    p = progress_from_events([START, *read_events(path)], alive=True)
    assert p.score_before is not None and (p.score_before.correct, p.score_before.total) == (0, 60)
    assert p.score_after is not None and (p.score_after.correct, p.score_after.total) == (57, 60)
    assert p.score_after.text == "95% (57/60)" and p.score_before.text == "0% (0/60)"
    dumped = p.model_dump(mode="json")  # what `jobs --json`, `status --json` and MCP return
    assert dumped["score_after"] == {"correct": 57, "total": 60, "exact_match": 0.95}
    assert JobProgress.model_validate(dumped).score_after == p.score_after  # and read back (store, MCP)
    none = progress_from_events([START, ScoreEvent(phase="before", correct=1, total=2)], alive=True)
    assert none.score_after is None and none.score_before is not None and none.score_before.exact_match == 0.5


def test_statuses_from_terminal_events_and_liveness() -> None:
    assert progress_from_events([], alive=True).status is JobStatus.PENDING
    assert progress_from_events([START], alive=True).status is JobStatus.RUNNING
    dead = progress_from_events([START], alive=False)
    assert dead.status is JobStatus.FAILED and dead.trainer_end is TrainerEnd.NO_FINAL_EVENT
    assert "without a final event" in (dead.error or "")
    err = progress_from_events([ErrorEvent(message="CUDA OOM")], alive=True)
    assert err.status is JobStatus.FAILED and err.error == "CUDA OOM" and err.trainer_end is TrainerEnd.ERROR
    st = progress_from_events([StoppedEvent(step=3, checkpoint="/c", reason="signal")], False)
    assert st.status is JobStatus.STOPPED and st.last_checkpoint == "/c" and st.step == 3
    assert st.error == "stopped: signal" and st.trainer_end is TrainerEnd.STOPPED
    # a stop that does not know the step (the SkyPilot budget check) keeps the last one seen
    late = progress_from_events([StepEvent(step=4), StoppedEvent(reason="max_runtime")], alive=False)
    assert late.step == 4 and late.status is JobStatus.STOPPED and late.last_checkpoint is None


def test_garbage_lines_are_skipped_not_folded(tmp_path: Path) -> None:
    """A line with the wrong types is not an event at all: it moves nothing (not even pending → running)."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event": "step", "step": "x", "loss": "nan?", "max_steps": true}\n'
        '{"event": "done", "output_dir": 3, "step": 1}\n',
        encoding="utf-8",
    )
    p = progress_from_events(read_events(path), alive=True)
    assert p.status is JobStatus.PENDING and p.step == 0 and p.loss is None and p.trainer_end is None


def test_a_non_finite_loss_is_unknown() -> None:
    p = progress_from_events([StepEvent(step=1, loss=float("nan")), StepEvent(step=2, loss=2.0)], alive=True)
    assert p.first_loss == 2.0 and p.loss == 2.0 and p.step == 2


def test_the_start_event_says_how_many_processes_and_which_strategy() -> None:
    start = START.model_copy(
        update={"world_size": 2, "num_nodes": 1, "strategy": "fsdp", "batch_size": 4, "global_batch_size": 8}
    )
    p = progress_from_events([start, StepEvent(step=1, loss=2.0)], alive=True)
    assert (p.world_size, p.num_nodes, p.strategy, p.global_batch_size) == (2, 1, "fsdp", 8)
    dumped = p.model_dump(mode="json")  # what `vibeml status --json` prints
    assert dumped["world_size"] == 2 and dumped["strategy"] == "fsdp"
    # a stream from a trainer that predates the fields: unknown, not a guess
    old = progress_from_events([START], alive=True)
    assert old.world_size is None and old.strategy is None


def test_a_start_line_with_world_size_parses_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line = START.model_copy(update={"world_size": 2, "strategy": "ddp"}).model_dump_json()
    path.write_text(line + "\n", encoding="utf-8")
    [ev] = list(read_events(path))
    assert isinstance(ev, StartEvent) and ev.world_size == 2 and ev.strategy == "ddp"
