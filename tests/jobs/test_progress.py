from __future__ import annotations

from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobStatus


def test_running_then_done() -> None:
    events = [
        {"event": "start", "max_steps": 10},
        {"event": "sample", "phase": "before", "prompt": "2+2?", "completion": "zz"},
        {"event": "step", "step": 1, "max_steps": 10, "loss": 5.0, "learning_rate": 1e-3, "eta_seconds": 9},
        {"event": "step", "step": 5, "max_steps": 10, "loss": 3.0, "tokens_per_s": 100.0},
        {"event": "checkpoint", "step": 5, "path": "/c/checkpoint-5"},
    ]
    p = progress_from_events(events, alive=True)
    assert p.status is JobStatus.RUNNING
    assert (p.step, p.max_steps, p.loss, p.first_loss) == (5, 10, 3.0, 5.0)
    assert p.last_checkpoint == "/c/checkpoint-5" and p.fraction_done == 0.5
    done = [*events, {"event": "done", "output_dir": "/o", "step": 10, "final_loss": 1.5, "first_loss": 5.0}]
    p = progress_from_events(done, alive=False)
    assert p.status is JobStatus.COMPLETED and p.loss == 1.5 and p.output_dir == "/o" and p.eta_seconds == 0
    assert p.samples_before == [{"prompt": "2+2?", "completion": "zz"}]


def test_statuses_from_terminal_events_and_liveness() -> None:
    assert progress_from_events([], alive=True).status is JobStatus.PENDING
    assert progress_from_events([{"event": "start"}], alive=True).status is JobStatus.RUNNING
    dead = progress_from_events([{"event": "start"}], alive=False)
    assert dead.status is JobStatus.FAILED and "without a final event" in (dead.error or "")
    err = progress_from_events([{"event": "error", "message": "CUDA OOM"}], alive=True)
    assert err.status is JobStatus.FAILED and err.error == "CUDA OOM"
    st = progress_from_events([{"event": "stopped", "step": 3, "checkpoint": "/c", "reason": "signal"}], False)
    assert st.status is JobStatus.STOPPED and st.last_checkpoint == "/c" and st.step == 3


def test_garbage_fields_are_ignored() -> None:
    p = progress_from_events([{"event": "step", "step": "x", "loss": "nan?", "max_steps": True}], alive=True)
    assert p.status is JobStatus.RUNNING and p.step == 0 and p.loss is None
