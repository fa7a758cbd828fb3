"""Several trainer processes without a plan (local ``--gpu-count N``) train the effective batch of one.

:func:`vibeml.estimate.planner.request_for_processes` splits the effective batch over the processes
(``batch_size × accumulation × processes = effective batch``), keeps what the request set explicitly, and
refuses — with a typed error, never a silently different batch — what cannot be split evenly.
"""

from __future__ import annotations

import pytest

from vibeml.client import build_request
from vibeml.estimate.planner import request_for_processes
from vibeml.exceptions import ConfigurationError, VibeMLError
from vibeml.models import TrainingRequest


def _req(**hp: object) -> TrainingRequest:
    return build_request(model="m", dataset="d.jsonl", **hp)


def _global(r: TrainingRequest, n: int) -> int:
    hp = r.hyperparameters
    return hp.batch_size * hp.gradient_accumulation_steps * n


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_the_effective_batch_is_split_over_the_processes(n: int) -> None:
    r = _req(effective_batch=32)
    out = request_for_processes(r, n)
    assert _global(out, n) == 32 and out.hyperparameters.effective_batch == 32
    assert out.hyperparameters.batch_size <= r.hyperparameters.batch_size  # no process needs more memory


def test_without_an_effective_batch_batch_times_accumulation_is_the_global_batch() -> None:
    r = _req()  # VibeML's default batch 4 × 1, nothing set by the user
    out = request_for_processes(r, 2)
    assert (out.hyperparameters.batch_size, out.hyperparameters.gradient_accumulation_steps) == (2, 1)
    assert _global(out, 2) == _global(r, 1) == 4
    assert request_for_processes(r, 1) is r  # one process: nothing to split


def test_an_accumulation_the_request_set_is_kept() -> None:
    r = _req(effective_batch=32, gradient_accumulation_steps=2)
    out = request_for_processes(r, 4)
    assert (out.hyperparameters.batch_size, out.hyperparameters.gradient_accumulation_steps) == (4, 2)


def test_a_batch_that_does_not_split_evenly_is_refused_with_context_and_a_fix() -> None:
    with pytest.raises(ConfigurationError) as info:
        request_for_processes(_req(effective_batch=10), 4)
    err = info.value
    assert isinstance(err, VibeMLError)
    assert err.context["effective_batch"] == 10 and err.context["processes"] == 4
    assert "does not split evenly" in err.message
    assert err.recovery_suggestion and "--effective-batch 8 or 12" in err.recovery_suggestion
    assert "--gpu-count 2" in err.recovery_suggestion


def test_a_pinned_micro_batch_that_cannot_make_the_share_is_refused() -> None:
    r = _req(batch_size=16, gradient_accumulation_steps=1)  # explicit: 16 per step in all
    with pytest.raises(ConfigurationError) as info:
        request_for_processes(r, 2)
    err = info.value
    assert err.context == {"effective_batch": 16, "processes": 2, "batch_size": 16, "gradient_accumulation_steps": 1}
    assert err.recovery_suggestion and "--effective-batch 32" in err.recovery_suggestion
    # the fix it suggests works: 16 × 1 per process, 32 in all
    fixed = request_for_processes(_req(batch_size=16, gradient_accumulation_steps=1, effective_batch=32), 2)
    assert (fixed.hyperparameters.batch_size, fixed.hyperparameters.gradient_accumulation_steps) == (16, 1)


def test_a_split_request_read_back_with_every_field_set_splits_the_same() -> None:
    out = request_for_processes(_req(effective_batch=16), 2)
    again = build_request(**out.model_dump(mode="json"))  # what a resume does with the stored request
    assert "batch_size" in again.hyperparameters.model_fields_set
    back = request_for_processes(again, 2)
    assert back.hyperparameters == out.hyperparameters


def test_the_rendered_trainer_config_runs_the_split() -> None:
    from vibeml.workflows.registry import render_program

    r = request_for_processes(_req(effective_batch=16, gpu_count=2), 2)
    program = render_program(r, "j", output_dir="o", checkpoint_dir="c", events_path="e")
    hp = program.config.hyperparameters  # validated again inside TrainerConfig: the split must survive it
    assert (hp.batch_size, hp.gradient_accumulation_steps, program.nproc_per_node) == (4, 2, 2)
    assert hp.batch_size * hp.gradient_accumulation_steps * program.nproc_per_node == 16
