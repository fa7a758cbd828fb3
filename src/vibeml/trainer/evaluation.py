"""Evaluation and watching inside the trainer: the eval set, TRL's eval/report settings, eval events.

* The eval set is a held-out fraction of the training rows (``eval_split``, a seeded shuffle split) or a
  dataset of its own (``eval_dataset``), loaded and normalised exactly like the training data and required
  to be in the same format (one collator serves both).
* Evaluation runs every ``eval_steps`` steps (default: :func:`default_eval_steps`, about ten times a run)
  and once more after the last step, so every finished run has a final eval loss.
* ``keep_best`` is TRL's ``load_best_model_at_end`` on ``eval_loss``: a checkpoint is saved at each
  evaluation (``save_steps`` becomes ``eval_steps``, and the log says so), rotation never deletes the
  best one, and the best one is what the run delivers.
* ``report_to`` is passed to TRL as is; TensorBoard writes into ``<job folder>/tensorboard`` unless
  ``TENSORBOARD_LOGGING_DIR`` says otherwise.

Rows are counted by :func:`eval_split_sizes`, which the launch's checks share, so a split that leaves
no training or no eval row is refused before a job exists (for local data) or before the model loads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vibeml.exceptions import DatasetError
from vibeml.trainer.events import EvalEvent, EventWriter

if TYPE_CHECKING:
    from vibeml.trainer.config import TrainerConfig
    from vibeml.trainer.data import PreparedDataset

__all__ = [
    "MIN_EVAL_ROWS",
    "MIN_TRAIN_ROWS",
    "TENSORBOARD_SUBDIR",
    "default_eval_steps",
    "eval_sft_kwargs",
    "eval_split_sizes",
    "make_eval_callback",
    "perplexity",
    "prepare_eval_dataset",
    "set_tracking_env",
]

MIN_EVAL_ROWS = 1
MIN_TRAIN_ROWS = 1
#: TensorBoard's event files go here, inside the job's folder (beside events.jsonl).
TENSORBOARD_SUBDIR = "tensorboard"
#: Evaluations a run gets when ``eval_steps`` is not given (plus the one after the last step).
DEFAULT_EVALS_PER_RUN = 10


def eval_split_sizes(num_rows: int, fraction: float, dataset: str = "") -> tuple[int, int]:
    """(training rows, eval rows) of a dataset of ``num_rows`` usable rows split at ``fraction``.

    Raises:
        DatasetError: The split leaves fewer than ``MIN_EVAL_ROWS`` eval or ``MIN_TRAIN_ROWS`` training rows.
    """
    n_eval = round(num_rows * fraction)
    n_train = num_rows - n_eval
    if n_eval < MIN_EVAL_ROWS or n_train < MIN_TRAIN_ROWS:
        raise DatasetError(
            f"eval_split {fraction} of {num_rows} usable rows leaves {n_train} to train on and {n_eval} to "
            f"evaluate on (each needs at least {max(MIN_EVAL_ROWS, MIN_TRAIN_ROWS)})",
            {"dataset": dataset, "rows": num_rows, "eval_split": fraction},
            "Use a larger dataset, pick an eval_split that holds out at least one row and keeps one to train "
            "on, or give a separate --eval-dataset.",
        )
    return n_train, n_eval


def default_eval_steps(planned_steps: int) -> int:
    """About :data:`DEFAULT_EVALS_PER_RUN` evaluations over a run of ``planned_steps`` steps."""
    return max(1, math.ceil(max(1, planned_steps) / DEFAULT_EVALS_PER_RUN))


def perplexity(loss: float | None) -> float | None:
    """exp(loss), or None when the loss is unknown or the result not finite."""
    if loss is None or not math.isfinite(loss):
        return None
    try:
        value = math.exp(loss)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def prepare_eval_dataset(config: TrainerConfig, prepared: PreparedDataset) -> tuple[Any, Any | None, int]:
    """(training dataset, eval dataset or None, eval rows) as ``config`` asks.

    Raises:
        DatasetError: The split is too small, or the eval dataset is unusable or not in the training format.
    """
    from vibeml.trainer.data import load_training_dataset

    if config.eval_split is not None:
        _, n_eval = eval_split_sizes(prepared.num_rows, config.eval_split, config.dataset)
        parts = prepared.dataset.train_test_split(test_size=n_eval, shuffle=True, seed=config.hyperparameters.seed)
        return parts["train"], parts["test"], n_eval
    if config.eval_dataset is None:
        return prepared.dataset, None, 0
    held = load_training_dataset(
        config.eval_dataset, config.dataset_format, config.eval_dataset_split, None, config.column_mapping
    )
    if held.format != prepared.format:
        raise DatasetError(
            f"the eval dataset {config.eval_dataset} is {held.format} data but the training data is {prepared.format}",
            {"eval_dataset": config.eval_dataset, "eval_format": held.format, "train_format": prepared.format},
            "Give an eval dataset in the training data's format (or convert one of them).",
        )
    return prepared.dataset, held.dataset, held.num_rows


def eval_sft_kwargs(config: TrainerConfig, planned_steps: int, has_eval: bool) -> dict[str, Any]:
    """The ``SFTConfig`` fields for evaluation, best-checkpoint keeping and reporting."""
    hp = config.hyperparameters
    kwargs: dict[str, Any] = {"report_to": config.report_to}
    if not has_eval:
        return kwargs
    steps = hp.eval_steps or default_eval_steps(planned_steps)
    kwargs.update(
        eval_strategy="steps",
        eval_steps=steps,
        per_device_eval_batch_size=hp.batch_size,
        prediction_loss_only=True,
    )
    if config.keep_best:  # every evaluation saves a checkpoint, so the best one exists to be kept
        kwargs.update(
            save_steps=steps,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    return kwargs


def set_tracking_env(config: TrainerConfig) -> str | None:
    """Point TensorBoard at the job's folder (unless ``TENSORBOARD_LOGGING_DIR`` is set); returns the folder."""
    if config.report_to != "tensorboard":
        return None
    folder = os.environ.get("TENSORBOARD_LOGGING_DIR") or str(Path(config.events_path).parent / TENSORBOARD_SUBDIR)
    os.environ["TENSORBOARD_LOGGING_DIR"] = folder
    return folder


def make_eval_callback(writer: EventWriter, t0: float, num_examples: int) -> Any:
    """A TrainerCallback that asks for an evaluation after the last step and writes each one as an event."""
    import time

    from transformers import TrainerCallback

    class EvalReporter(TrainerCallback):
        def __init__(self) -> None:
            self.last_loss: float | None = None
            self.best_loss: float | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if state.max_steps and state.global_step >= state.max_steps:
                control.should_evaluate = True  # every finished run ends with an eval loss
            return control

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            metrics = metrics if isinstance(metrics, dict) else {}
            raw = metrics.get("eval_loss")
            loss = float(raw) if isinstance(raw, (int, float)) else None
            if loss is not None and math.isfinite(loss):
                self.last_loss = loss
                if self.best_loss is None or loss < self.best_loss:
                    self.best_loss = loss
            accuracy = metrics.get("eval_mean_token_accuracy")
            runtime = metrics.get("eval_runtime")
            writer.emit(
                EvalEvent(
                    step=int(state.global_step),
                    loss=round(loss, 6) if loss is not None else None,
                    perplexity=perplexity(loss),
                    mean_token_accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
                    num_examples=num_examples,
                    runtime_seconds=float(runtime) if isinstance(runtime, (int, float)) else None,
                    elapsed_seconds=round(time.monotonic() - t0, 2),
                )
            )
            ppl = perplexity(loss)
            print(
                f"[vibeml] eval at step {state.global_step}: loss "
                + (f"{loss:.4f}" if loss is not None else "n/a")
                + (f", perplexity {ppl:.2f}" if ppl is not None else ""),
                flush=True,
            )

    return EvalReporter()
