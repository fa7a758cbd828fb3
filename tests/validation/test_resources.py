"""ResourceValidator: disk sizing by part and the local free-space check."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibeml.catalog.architectures import builtin_architecture
from vibeml.estimate.cost import BASE_DISK_GB, job_disk_gb
from vibeml.estimate.memory import TrainingShape
from vibeml.exceptions import ResourceError
from vibeml.validation import DiskEstimate, ResourceValidator

ARCH = builtin_architecture("meta-llama/Llama-3.1-8B", fuzzy=False)


def test_lora_job_is_mostly_the_download() -> None:
    assert ARCH is not None
    est = ResourceValidator().estimate_disk(ARCH, method="lora", dataset_bytes=50_000_000)
    assert isinstance(est, DiskEstimate)
    assert est.model_gb == pytest.approx(ARCH.weight_bytes_bf16 / 1e9, rel=1e-3)
    assert est.checkpoints_gb == pytest.approx(12 * ARCH.lora_params(16) * 3 / 1e9, rel=1e-3)
    assert est.dataset_gb == pytest.approx(0.15) and est.environment_gb == 0
    parts = est.model_gb + est.dataset_gb + est.checkpoints_gb + est.output_gb + est.headroom_gb
    assert est.total_gb == pytest.approx(parts, abs=0.01)
    assert 16 < est.total_gb < 25


def test_full_fine_tune_keeps_optimizer_state_and_remote_adds_the_image() -> None:
    assert ARCH is not None
    lora = ResourceValidator().estimate_disk(ARCH, method="lora")
    full = ResourceValidator().estimate_disk(ARCH, method="full", save_total_limit=2, remote=True)
    assert full.checkpoints_gb == pytest.approx(6 * ARCH.param_count * 3 / 1e9, rel=1e-3)
    assert full.environment_gb == BASE_DISK_GB and full.total_gb > 5 * lora.total_gb
    # consistent with the planner's disk figure (which keeps one fewer checkpoint and no headroom)
    planner = job_disk_gb(ARCH, TrainingShape(method="full"), 2)
    assert planner < full.total_gb < planner * 1.5
    merged = ResourceValidator().estimate_disk(ARCH, method="lora", save_merged=True)
    assert merged.output_gb > lora.output_gb + 15


def test_local_free_space(tmp_path: Path) -> None:
    assert ARCH is not None
    validator = ResourceValidator()
    est = validator.estimate_disk(ARCH, method="lora")
    ok = validator.check_local(est, tmp_path / "not" / "yet", free_bytes=10**12)
    assert ok.fits and ok.free_gb == 1000 and ok.path == str(tmp_path / "not" / "yet")
    with pytest.raises(ResourceError) as err:
        validator.check_local(est, tmp_path, free_bytes=10**9)
    assert err.value.context["free_gb"] == 1.0 and err.value.context["needed_gb"] > 16
    assert "save_total_limit" in (err.value.recovery_suggestion or "")
    assert validator.free_bytes(tmp_path / "missing" / "deep") > 0  # the nearest existing parent
