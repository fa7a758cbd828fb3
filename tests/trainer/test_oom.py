"""Out-of-memory recovery: the ladder (pure), the event and its fold, and a real retry on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vibeml.jobs.progress import progress_from_events
from vibeml.models import JobStatus
from vibeml.trainer.config import OomFallback, TrainerConfig
from vibeml.trainer.events import DoneEvent, ErrorEvent, OomRetryEvent, StartEvent, dump_event, parse_event
from vibeml.trainer.oom import FAULT_ENV, Attempt, default_fallbacks, fallbacks, retry_config


def _rungs(ladder: list[OomFallback]) -> list[tuple[int, int, bool | None]]:
    return [(r.batch_size, r.gradient_accumulation_steps, r.gradient_checkpointing) for r in ladder]


def _config(**hp: Any) -> TrainerConfig:
    return TrainerConfig(
        model="m", dataset="d", output_dir="o", checkpoint_dir="c", events_path="e.jsonl", hyperparameters=hp
    )


@pytest.mark.parametrize(
    ("batch", "accum", "ckpt", "want"),
    [
        (4, 1, None, [(2, 2, None), (1, 4, None), (1, 4, True)]),
        (8, 2, True, [(4, 4, None), (2, 8, None), (1, 16, None), (1, 16, True)]),
        (6, 1, False, [(3, 2, None), (1, 6, None)]),  # an explicit "off" is kept
        (3, 2, None, [(1, 6, None), (1, 6, True)]),  # 3 → the largest divisor of 6 at most 1
        (1, 4, None, [(1, 4, True)]),
    ],
)
def test_default_ladder_keeps_the_effective_batch(
    batch: int, accum: int, ckpt: bool | None, want: list[tuple[int, int, bool | None]]
) -> None:
    ladder = default_fallbacks(batch, accum, ckpt)
    assert _rungs(ladder) == want
    assert all(r.batch_size * r.gradient_accumulation_steps == batch * accum for r in ladder)


def test_config_ladder_wins_and_must_keep_the_effective_batch() -> None:
    cfg = _config(batch_size=4)
    assert _rungs(fallbacks(cfg)) == [(2, 2, None), (1, 4, None), (1, 4, True)]
    planned = TrainerConfig.model_validate(
        {**cfg.model_dump(), "oom_fallbacks": [{"batch_size": 1, "gradient_accumulation_steps": 4}]}
    )
    assert _rungs(fallbacks(planned)) == [(1, 4, None)]
    with pytest.raises(ValueError, match="effective batch"):
        TrainerConfig.model_validate(
            {**cfg.model_dump(), "oom_fallbacks": [{"batch_size": 1, "gradient_accumulation_steps": 1}]}
        )


def test_retry_skips_rungs_that_repeat_the_failed_attempt() -> None:
    cfg = _config(batch_size=2, gradient_accumulation_steps=2)
    ladder = default_fallbacks(2, 2, None)  # (1, 4), (1, 4, ckpt on)
    first = retry_config(cfg, ladder, Attempt(2, 2, gradient_checkpointing=False))
    assert first is not None
    nxt, rung, rest = first
    assert rung.gradient_checkpointing is None
    assert (nxt.hyperparameters.batch_size, nxt.hyperparameters.gradient_accumulation_steps) == (1, 4)
    assert nxt.hyperparameters.gradient_checkpointing is None
    # micro-batch 1 already ran with checkpointing on every layer: the "checkpointing on" rung cannot help
    assert retry_config(nxt, rest, Attempt(1, 4, gradient_checkpointing=True)) is None
    second = retry_config(nxt, rest, Attempt(1, 4, gradient_checkpointing=False))
    assert second is not None and second[0].hyperparameters.gradient_checkpointing is True
    assert retry_config(cfg, [], Attempt(2, 2, False)) is None


def test_oom_retry_event_round_trips_and_folds_into_progress() -> None:
    ev = OomRetryEvent(
        attempt=1,
        step=0,
        message="CUDA out of memory",
        failed_batch_size=4,
        failed_gradient_accumulation_steps=1,
        failed_gradient_checkpointing=False,
        next_batch_size=2,
        next_gradient_accumulation_steps=2,
        estimated_gib=20.0,
        capacity_gib=24.0,
        peak_gib=23.5,
        underestimate_at_least=1.2,
    )
    back = parse_event(dump_event(ev))
    assert back == ev
    p = progress_from_events([StartEvent(model="m", dataset="d", method="lora", device="cuda", max_steps=3), ev])
    assert p.status is JobStatus.RUNNING
    (r,) = p.oom_retries
    assert r.failed == "micro-batch 4 x 1, checkpointing off"
    assert r.next == "micro-batch 2 x 2, checkpointing as before"
    assert (r.estimated_gib, r.capacity_gib, r.underestimate_at_least) == (20.0, 24.0, 1.2)


@pytest.mark.slow
def test_injected_oom_retries_at_smaller_micro_batch_and_completes(
    tmp_path: Path, tiny_model_dir: Path, cli: Any, dataset_file: Any
) -> None:
    data = dataset_file("alpaca", 24)
    retry_cfg = cli.config(
        tmp_path / "retry", tiny_model_dir, data, hyperparameters={"batch_size": 4, "max_steps": 2, "save_steps": 2}
    )
    # a ladder with no rung: the same injected fault is the error it always was
    no_ladder_cfg = cli.config(
        tmp_path / "none", tiny_model_dir, data, hyperparameters={"batch_size": 4, "max_steps": 2}, oom_fallbacks=[]
    )
    fault = {FAULT_ENV: "1"}  # out of memory at any micro-batch above 1
    started = [cli.start(tmp_path / "retry", retry_cfg, fault), cli.start(tmp_path / "none", no_ladder_cfg, fault)]
    retry, none = (p.wait(timeout=300) for p in started)

    assert retry.rc == 0, retry.describe()
    retries = retry.of(OomRetryEvent)
    assert [(r.failed_batch_size, r.failed_gradient_accumulation_steps) for r in retries] == [(4, 1), (2, 2)]
    assert [(r.next_batch_size, r.next_gradient_accumulation_steps) for r in retries] == [(2, 2), (1, 4)]
    assert all(r.estimated_gib and r.estimated_gib > 0 for r in retries)  # the estimate of what failed
    assert all(r.capacity_gib is None for r in retries)  # a CPU has no device capacity to compare
    starts = retry.of(StartEvent)
    assert [(s.batch_size, s.gradient_accumulation_steps) for s in starts] == [(4, 1), (2, 2), (1, 4)]
    (done,) = retry.of(DoneEvent)
    assert done.step == 2
    # what the Trainer really ran: micro-batch 1 with 4 accumulation steps, the effective batch of 4
    state = json.loads((tmp_path / "retry" / "ckpt" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 1
    import torch

    args = torch.load(tmp_path / "retry" / "ckpt" / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 4
    progress = progress_from_events(retry.events, alive=False)
    assert progress.status is JobStatus.COMPLETED and len(progress.oom_retries) == 2

    assert none.rc == 1, none.describe()
    assert not none.of(OomRetryEvent)
    (err,) = none.of(ErrorEvent)
    assert err.error_type == "ResourceError" and "out of memory" in err.message
