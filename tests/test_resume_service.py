"""`VibeML.resume` / ``resume_from``: which checkpoint a new job continues from, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_service_prepare import MODEL, RecordingLocal, _clear_calls, _data, _service  # noqa: F401
from tests.trainer.test_checkpoints import _checkpoint
from vibeml.backends.vast.backend import VastBackend
from vibeml.client import VibeML
from vibeml.exceptions import ConfigurationError, JobNotFoundError, ValidationError
from vibeml.jobs.store import utcnow
from vibeml.models import JobRecord, JobStatus, TrainingRequest

OLD = "vml-0ld0beef"


def _old_job(svc: VibeML, data: str, status: JobStatus = JobStatus.STOPPED, **request: object) -> Path:
    now = utcnow()
    fields = {"model": MODEL, "dataset": data, "backend": "rec-paid", "max_cost": 5.0, "max_steps": 50, **request}
    svc.store.create(
        JobRecord(
            job_id=OLD,
            status=status,
            backend="rec-paid",
            created_at=now,
            updated_at=now,
            request=TrainingRequest.model_validate(fields),
        )
    )
    return svc.job_dir(OLD) / "checkpoints"


def test_resume_continues_from_the_last_complete_checkpoint_and_says_which(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    ckpts = _old_job(svc, _data(tmp_path / "d.jsonl"), save_steps=4)
    _checkpoint(ckpts, 4)
    good = _checkpoint(ckpts, 8)
    torn = _checkpoint(ckpts, 12)
    (torn / "trainer_state.json").write_text('{"global_step": 12, "log_his')

    record = svc.resume(OLD[:7], max_steps=80)
    [(job_id, program, _)] = RecordingLocal.calls
    assert record.job_id == job_id != OLD
    assert program.config.resume_from_checkpoint == str(good)
    assert program.config.hyperparameters.max_steps == 80 and program.config.hyperparameters.save_steps == 4
    assert record.request.resume_from == OLD and record.request.model == MODEL
    assert record.notes[0].startswith("checkpoint checkpoint-12 is incomplete (trainer_state.json is not readable")
    assert record.notes[-1] == f"continuing job {OLD} from step 8"
    assert any(e.get("kind") == "resume" for e in svc.store.events(job_id))

    # launch --resume-from: the same through a full request (here on the other backend, and a new cap)
    svc.request_from(MODEL, str(tmp_path / "d.jsonl"), backend="rec-paid", max_cost=2.0, resume_from=OLD)
    svc.launch(svc.request_from(MODEL, str(tmp_path / "d.jsonl"), backend="rec-paid", max_cost=2.0, resume_from=OLD))
    assert RecordingLocal.calls[-1][1].config.resume_from_checkpoint == str(good)


def test_what_cannot_be_resumed_is_refused_before_anything_starts(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    data = _data(tmp_path / "d.jsonl")
    ckpts = _old_job(svc, data)
    with pytest.raises(ConfigurationError, match="left no complete checkpoint") as info:
        svc.resume(OLD)
    assert info.value.recovery_suggestion
    torn = _checkpoint(ckpts, 3)
    (torn / "trainer_state.json").write_text("")
    with pytest.raises(ConfigurationError, match=r"checkpoint-3: trainer_state.json is not readable JSON"):
        svc.resume(OLD)
    _checkpoint(ckpts, 6)
    other = svc.request_from("Qwen/Qwen2.5-1.5B", data, backend="rec-paid", max_cost=2.0, resume_from=OLD)
    with pytest.raises(ConfigurationError, match="its checkpoint cannot be loaded"):
        svc.launch(other)
    full = svc.request_from(MODEL, data, backend="rec-paid", max_cost=2.0, resume_from=OLD, workflow="full")
    with pytest.raises(ConfigurationError, match="saved LoRA adapters; workflow full trains full weights"):
        svc.launch(full)
    with pytest.raises(JobNotFoundError):
        svc.resume("vml-nothere")
    with pytest.raises(ValidationError):
        svc.resume(OLD, max_steps=0)
    with pytest.raises(ValidationError):
        svc.request_from(MODEL, data, resume_from="not a job; rm -rf")
    assert RecordingLocal.calls == []


def test_a_running_job_is_not_resumed(tmp_path: Path) -> None:
    svc = _service(tmp_path)
    _checkpoint(_old_job(svc, _data(tmp_path / "d.jsonl"), status=JobStatus.RUNNING), 2)
    with pytest.raises(ConfigurationError, match="still running") as info:
        svc.resume(OLD)
    assert "vibeml stop" in (info.value.recovery_suggestion or "")


def test_a_local_checkpoint_is_uploaded_to_a_rented_machine(tmp_path: Path) -> None:
    from vibeml.backends.skypilot.task import _mount_inputs
    from vibeml.trainer.config import TrainerConfig

    ckpt = _checkpoint(tmp_path / "checkpoints", 8)
    config = TrainerConfig(
        model=MODEL,
        dataset=_data(tmp_path / "d.jsonl"),
        output_dir="o",
        checkpoint_dir="c",
        events_path="e",
        resume_from_checkpoint=str(ckpt),
    )
    inputs = VastBackend._inputs(config)
    assert ("resume_from_checkpoint", ckpt, "inputs/checkpoint-8") in inputs
    payload = VastBackend._payload(_program(config), inputs)
    assert payload.config["resume_from_checkpoint"] == "inputs/checkpoint-8"
    assert "resume_from_checkpoint" in payload.relative_fields
    mounts: dict[str, str] = {}
    updates = _mount_inputs(config, mounts)
    assert updates["resume_from_checkpoint"].endswith("inputs/checkpoint-8")
    assert str(ckpt.resolve()) in mounts.values()


def _program(config: object) -> object:
    from vibeml.workflows.registry import TrainingProgram

    return TrainingProgram(workflow="trl-lora", config=config)


def test_a_resume_on_another_process_count_keeps_the_effective_batch_and_splits_it_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_assets_dir: Path
) -> None:
    """The earlier run split 16 sequences over 2 processes (8 × 1 each, as it was stored): resumed on one
    process it trains 8 × 2, on two again 8 × 1; a batch given with the resume is kept as given."""
    monkeypatch.setenv("VIBEML_CPU_PROCESSES", "2")
    svc = _service(tmp_path)
    split = {"batch_size": 8, "gradient_accumulation_steps": 1, "effective_batch": 16, "save_steps": 4}
    local = {"backend": "rec-local", "max_cost": None, "gpu_count": 2, "model": str(demo_assets_dir / "tiny-llama")}
    ckpts = _old_job(svc, _data(tmp_path / "d.jsonl"), **local, **split)
    _checkpoint(ckpts, 4)

    def hp(**overrides: object) -> tuple[int, int, int]:
        RecordingLocal.calls.clear()
        svc.resume(OLD, **overrides)
        [(_, program, _)] = RecordingLocal.calls
        h = program.config.hyperparameters
        return h.batch_size, h.gradient_accumulation_steps, program.nproc_per_node

    assert hp(gpu_count=1) == (8, 2, 1)
    assert hp() == (8, 1, 2)
    assert hp(gpu_count=1, batch_size=4) == (4, 4, 1)  # the resume's own micro-batch is kept
    assert hp(gpu_count=1, batch_size=2, gradient_accumulation_steps=3) == (2, 3, 1)  # a whole new batch
    assert hp(gpu_count=1, effective_batch=12) == (4, 3, 1)  # a new effective batch, split from scratch
    with pytest.raises(ConfigurationError, match="does not split evenly"):
        hp(gpu_count=2, effective_batch=15)
