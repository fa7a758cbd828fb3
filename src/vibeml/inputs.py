"""What a launch reads, checked before anything starts: local paths, the dataset, the hub token.

The service (``client.py``) calls these before a job exists. Local paths are made absolute (the trainer
runs elsewhere) and missing ones are refused. A local dataset goes through the trainer's own format
check. The Hugging Face token is looked up for gated or private repos.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from vibeml.exceptions import DatasetError, ModelNotFoundError, VibeMLError
from vibeml.models import TrainingRequest
from vibeml.safe_paths import exists, is_file
from vibeml.settings import Settings

if TYPE_CHECKING:
    from vibeml.estimate.cost import DatasetStats

__all__ = [
    "check_local_dataset",
    "dataset_stats",
    "hub_secrets",
    "hub_token",
    "looks_like_path",
    "resolve_local_inputs",
]

_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
#: Local data larger than this is not read before launch (the trainer still checks it as it loads).
CHECK_MAX_BYTES = 512 * 2**20


def dataset_stats(
    dataset: str,
    max_bytes: int = CHECK_MAX_BYTES,
    *,
    dataset_format: str = "auto",
    column_mapping: dict[str, str] | None = None,
) -> DatasetStats | None:
    """Usable rows and tokens per row of a local dataset (file or folder; ≈4 characters per token of the
    rows as the trainer renders them), from the dataset check.

    Hub datasets (no network while planning), datasets over ``max_bytes`` and unreadable ones return None
    (the estimator then needs max_steps); a JSONL file the check rejects falls back to raw line lengths.
    """
    from vibeml.estimate.cost import DatasetStats
    from vibeml.trainer.data import resolve_dataset_source

    path = Path(dataset)
    try:
        source = resolve_dataset_source(dataset)  # refuses huge folders instead of walking them
        if source.kind != "files" or sum(Path(f).stat().st_size for f in source.files) > max_bytes:
            return None
    except (VibeMLError, OSError):
        return None
    try:
        from vibeml.validation.dataset import DatasetValidator

        report = DatasetValidator().validate_dataset(
            str(path), dataset_format=dataset_format, column_mapping=column_mapping
        )
        if report.stats is not None:
            return report.stats
    except VibeMLError:
        pass
    if path.suffix.lower() != ".jsonl" or not is_file(path):
        return None
    rows = chars = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                rows += 1
                chars += len(line)
    if rows == 0:
        return None
    return DatasetStats(rows=rows, mean_tokens_per_row=max(1.0, chars / rows / 4))


def looks_like_path(value: str) -> bool:
    """Written like a file path (rather than a hub id)."""
    return value.startswith(("/", "./", "../", "~")) or value.lower().endswith(_DATA_SUFFIXES)


def hub_token(settings: Settings) -> str | None:
    """The Hugging Face token, as validation finds it: VibeML's credential store, then HF_TOKEN, then
    `hf auth login`. Read only when a gated or private repo needs it."""
    from vibeml.validation.hub import HubAccess

    return HubAccess.resolve(settings=settings).token


def hub_secrets(settings: Settings) -> dict[str, SecretStr]:
    """The token for the trainer, wherever it runs: a secret environment variable (never in the config),
    absent when none is set."""
    token = hub_token(settings)
    return {"HF_TOKEN": SecretStr(token)} if token else {}


def check_local_dataset(path: Path, request: TrainingRequest, max_bytes: int = CHECK_MAX_BYTES) -> None:
    """Refuse a local dataset the trainer could not use, before anything starts or is rented.

    The check is the trainer's own format detection, with the request's format and column mapping.
    Data that is not plain files (a save_to_disk folder), or files over ``max_bytes``, are left to the
    trainer.

    Raises:
        DatasetError: Unreadable rows, no format matching the columns, or no usable row.
    """
    from vibeml.trainer.data import resolve_dataset_source
    from vibeml.validation.dataset import DatasetValidator

    source = resolve_dataset_source(str(path))
    if source.kind != "files" or sum(Path(f).stat().st_size for f in source.files) > max_bytes:
        return
    DatasetValidator().validate_dataset(
        str(path), dataset_format=request.dataset_format, column_mapping=request.column_mapping
    )


def resolve_local_inputs(request: TrainingRequest) -> tuple[TrainingRequest, bool]:
    """Make local paths absolute (the trainer runs elsewhere) and reject missing ones early.

    Returns the request and whether everything it reads is local (so the hub can stay offline).
    """
    updates: dict[str, Any] = {}
    local = True
    model_path = Path(request.model).expanduser()
    if exists(model_path):
        if not exists(model_path / "config.json"):
            raise ModelNotFoundError(
                f"{request.model} is a local path but not a model directory (no config.json)",
                {"model": request.model},
                "Point --model at a directory saved with save_pretrained(), or give a hub id.",
            )
        updates["model"] = str(model_path.resolve())
    elif looks_like_path(request.model):
        raise ModelNotFoundError(
            f"model directory not found: {request.model}",
            {"model": request.model},
            "Check the path, or give a hub id such as 'Qwen/Qwen2.5-0.5B'.",
        )
    elif not _HUB_ID.match(request.model):
        raise ModelNotFoundError(
            f"{request.model!r} is neither a local directory nor a hub id like 'org/name'",
            {"model": request.model},
            "Give a hub id such as 'Qwen/Qwen2.5-0.5B' or a local model directory.",
        )
    else:
        local = False
    data_path = Path(request.dataset).expanduser()
    if exists(data_path):
        updates["dataset"] = str(data_path.resolve())
        check_local_dataset(data_path.resolve(), request)
    elif looks_like_path(request.dataset):
        raise DatasetError(
            f"dataset file not found: {request.dataset}",
            {"dataset": request.dataset},
            "Check the path (relative paths are from the current directory) or give a hub dataset id.",
        )
    elif not _HUB_ID.match(request.dataset):
        raise DatasetError(
            f"{request.dataset!r} is neither a local file nor a hub dataset id like 'org/name'",
            {"dataset": request.dataset},
        )
    else:
        local = False
    if request.output_dir:
        updates["output_dir"] = str(Path(request.output_dir).expanduser().resolve())
    if updates:
        request = request.model_copy(update=updates)
    return request, local
