"""Disk sizing: what a fine-tune writes (weights download, dataset cache, checkpoints, result) and whether
the local disk has room for it.

Checkpoint sizes follow what the Trainer saves: LoRA adapters in fp32 plus two Adam states (12 bytes per
trainable parameter); a full fine-tune saves bf16 weights plus two bf16 Adam states (6 bytes per
parameter, the same rule as :func:`vibeml.estimate.cost.job_disk_gb`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.estimate.cost import BASE_DISK_GB
from vibeml.exceptions import ResourceError

__all__ = ["DiskEstimate", "ResourceValidator"]

#: The datasets library keeps an Arrow copy of the data plus the tokenised/normalised copies.
DATASET_CACHE_FACTOR = 3.0
#: Share added on top for logs, temporary files and a checkpoint being written while the oldest is kept.
DISK_HEADROOM = 0.15


class DiskEstimate(BaseModel):
    """Disk a job needs, GB (10^9 bytes), by part."""

    model_config = ConfigDict(extra="forbid")

    model_gb: float = Field(description="Downloaded base weights (hub cache).")
    dataset_gb: float = Field(description="Data files and the datasets cache.")
    checkpoints_gb: float = Field(description="save_total_limit checkpoints (+1 while a new one is written).")
    output_gb: float = Field(description="The final adapter or model (and merged weights when asked).")
    environment_gb: float = Field(description="Image, CUDA and Python packages (remote machines only).")
    headroom_gb: float
    total_gb: float
    path: str | None = None
    free_gb: float | None = None
    fits: bool | None = None


class ResourceValidator:
    """Sizes the disk of a fine-tune and checks the local free space."""

    def estimate_disk(
        self,
        arch: ModelArchitecture,
        *,
        method: Literal["lora", "qlora", "full"] = "lora",
        lora_r: int = 16,
        lora_targets: tuple[str, ...] | None = None,
        save_total_limit: int = 2,
        dataset_bytes: int = 0,
        model_bytes: int | None = None,
        save_merged: bool = False,
        remote: bool = False,
    ) -> DiskEstimate:
        """Disk for one job.

        Args:
            arch: The model's architecture (parameter counts).
            model_bytes: Size of the weight files when known (e.g. ``ModelInfo.size_bytes``); else bf16.
            dataset_bytes: Size of the data files.
            remote: Count the machine's image and packages (``BASE_DISK_GB``) too.
        """
        weights = float(model_bytes) if model_bytes else float(arch.weight_bytes_bf16)
        if method == "full":
            checkpoint = 6.0 * arch.param_count
            output = 2.0 * arch.param_count
        else:
            adapters = arch.lora_params(lora_r, lora_targets)
            checkpoint = 12.0 * adapters
            output = 4.0 * adapters
            if save_merged:
                output += 2.0 * arch.param_count
        checkpoints = checkpoint * (save_total_limit + 1)
        dataset = dataset_bytes * DATASET_CACHE_FACTOR
        environment = BASE_DISK_GB * 1e9 if remote else 0.0
        subtotal = weights + dataset + checkpoints + output + environment
        headroom = DISK_HEADROOM * (subtotal - environment)
        gb = 1e9
        return DiskEstimate(
            model_gb=round(weights / gb, 3),
            dataset_gb=round(dataset / gb, 3),
            checkpoints_gb=round(checkpoints / gb, 3),
            output_gb=round(output / gb, 3),
            environment_gb=round(environment / gb, 3),
            headroom_gb=round(headroom / gb, 3),
            total_gb=round((subtotal + headroom) / gb, 3),
        )

    @staticmethod
    def free_bytes(path: str | Path) -> int:
        """Free space on the file system that holds ``path`` (its nearest existing parent)."""
        p = Path(path).expanduser().resolve()
        while not p.exists() and p != p.parent:
            p = p.parent
        return shutil.disk_usage(p).free

    def check_local(self, estimate: DiskEstimate, path: str | Path, *, free_bytes: int | None = None) -> DiskEstimate:
        """``estimate`` with the free space at ``path`` filled in.

        Raises:
            ResourceError: Less free space than the job needs.
        """
        free = self.free_bytes(path) if free_bytes is None else free_bytes
        free_gb = round(free / 1e9, 3)
        need = estimate.total_gb - estimate.environment_gb
        checked = estimate.model_copy(update={"path": str(path), "free_gb": free_gb, "fits": free_gb >= need})
        if not checked.fits:
            raise ResourceError(
                f"not enough disk at {path}: the job needs about {need:.1f} GB, {free_gb:.1f} GB are free",
                {
                    "path": str(path),
                    "needed_gb": round(need, 1),
                    "free_gb": free_gb,
                    "model_gb": estimate.model_gb,
                    "checkpoints_gb": estimate.checkpoints_gb,
                },
                "Free disk space, point the output/checkpoints (VIBEML_HOME) and the hub cache (HF_HOME) at a "
                "larger disk, or keep fewer checkpoints (save_total_limit).",
            )
        return checked
