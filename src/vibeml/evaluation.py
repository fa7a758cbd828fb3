"""A launch's evaluation settings, checked before a job exists or anything is rented.

:func:`check_eval_settings` runs as the request is built (its errors become the request's
``ValidationError``): one eval source at most, and no eval-only option without one. :func:`check_eval_inputs`
runs in ``prepare_launch`` beside the training dataset's checks: the eval dataset is resolved and checked
exactly like the training dataset (local path made absolute, split, format and columns; a hub id's split
through the hub's metadata), and a held-out fraction must leave rows on both sides of a local dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vibeml.exceptions import DatasetError

if TYPE_CHECKING:
    from vibeml.models import TrainingRequest
    from vibeml.settings import Settings
    from vibeml.validation.dataset import DatasetReport

__all__ = ["check_eval_inputs", "check_eval_settings", "usable_rows"]


def check_eval_settings(request: TrainingRequest) -> None:
    """Refuse contradictory or silently ignored evaluation settings (raises ``ValueError`` for pydantic)."""
    hp = request.hyperparameters
    has_eval = request.eval_split is not None or request.eval_dataset is not None
    if request.eval_split is not None and request.eval_dataset is not None:
        raise ValueError("give eval_split (a held-out fraction) or eval_dataset, not both")
    if not has_eval:
        for name, given in (
            ("keep_best", request.keep_best),
            ("eval_steps", hp.eval_steps is not None),
            ("eval_dataset_split", request.eval_dataset_split != "train"),
        ):
            if given:
                raise ValueError(f"{name} needs an eval set: add eval_split (e.g. 0.1) or eval_dataset")
    if request.eval_split is not None and request.eval_dataset_split != "train":
        raise ValueError("eval_dataset_split applies to eval_dataset, not to eval_split")


def usable_rows(report_rows: int, checked: int, usable: int) -> int:
    """Usable rows of a whole dataset from the check's sample (exact when every row was checked)."""
    if checked <= 0:
        return 0
    return usable if checked >= report_rows else round(report_rows * usable / checked)


def check_eval_inputs(request: TrainingRequest, settings: Settings | None) -> tuple[TrainingRequest, bool]:
    """The request with a local ``eval_dataset`` made absolute, after checking it like the training data,
    and whether the eval data is local (a hub eval set keeps the hub online for the run).

    Raises:
        DatasetError: The eval dataset is missing or unusable, not in the training data's format, or the
            held-out fraction leaves no training or no eval row of a local dataset.
        CredentialError: A hub eval dataset is gated or private and the token has no access.
    """
    from vibeml.inputs import resolve_local_inputs
    from vibeml.trainer.evaluation import eval_split_sizes

    if request.eval_split is not None:
        report = _local_report(request.dataset, request)
        if report is not None:
            rows = usable_rows(report.num_rows, report.rows_checked, report.usable_rows)
            eval_split_sizes(rows, request.eval_split, request.dataset)
        return request, True
    if request.eval_dataset is None:
        return request, True
    # the training dataset's own checks, on a request whose dataset is the eval set
    probe = request.model_copy(
        update={"dataset": request.eval_dataset, "dataset_split": request.eval_dataset_split, "dataset_config": None}
    )
    try:
        checked, _ = resolve_local_inputs(probe, settings)
        local = Path(checked.dataset).is_absolute() and Path(checked.dataset).exists()
    except DatasetError as exc:
        raise DatasetError(
            f"eval dataset: {exc.message}",
            {**exc.context, "eval_dataset": request.eval_dataset},
            (exc.recovery_suggestion or "").replace("--dataset-split", "--eval-dataset-split")
            or "Check --eval-dataset (a local file or a hub dataset id).",
        ) from exc
    eval_report = _local_report(checked.dataset, request)
    train_report = _local_report(request.dataset, request)
    if eval_report is not None and train_report is not None and eval_report.format != train_report.format:
        raise DatasetError(
            f"the eval dataset is {eval_report.format} data but the training data is {train_report.format}",
            {"eval_dataset": checked.dataset, "eval_format": eval_report.format, "train_format": train_report.format},
            "Give an eval dataset in the training data's format (or convert one of them).",
        )
    return request.model_copy(update={"eval_dataset": checked.dataset}), local


def _local_report(dataset: str, request: TrainingRequest) -> DatasetReport | None:
    """The dataset check's report of a local dataset small enough to read, else None (hub, huge, saved)."""
    from vibeml.inputs import CHECK_MAX_BYTES
    from vibeml.trainer.data import resolve_dataset_source
    from vibeml.validation.dataset import DatasetValidator

    path = Path(dataset).expanduser()
    if not path.exists():
        return None
    source = resolve_dataset_source(str(path))
    if source.kind != "files" or sum(Path(f).stat().st_size for f in source.files) > CHECK_MAX_BYTES:
        return None
    return DatasetValidator().validate_dataset(
        str(path), dataset_format=request.dataset_format, column_mapping=request.column_mapping
    )
