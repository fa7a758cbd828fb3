"""Dataset loading, format detection and normalisation for the trainer.

Formats understood (``dataset_format="auto"`` detects them from the columns, in this order):

============================  =========================================================================
``messages``                  ``messages``: list of ``{role, content}`` (``{from, value}`` items accepted)
``sharegpt``                  ``conversations``: list of ``{from: human|gpt|system, value}``
``alpaca``                    ``instruction`` + ``output`` (alias ``response``), optional ``input``
                              (alias ``context``) and ``system``
``prompt_completion``         ``prompt`` + ``completion``: strings or lists of messages
``text``                      ``text``: plain text for language modelling
============================  =========================================================================

Everything is normalised to what TRL's ``SFTTrainer`` consumes:

- alpaca and prompt/completion → conversational ``prompt`` (``[system?, user]``) and ``completion``
  (``[assistant]``), so the loss is computed on the completion only;
- messages and sharegpt → ``messages`` (roles ``system``/``user``/``assistant``/``tool``);
- text → ``text``.

Malformed rows (a missing or empty field, an unknown role, a conversation without an assistant turn)
are **skipped and counted**; the count and the first few problems (with 1-based row numbers) are
reported in :class:`PreparedDataset`. A dataset in which no row is usable is a :class:`DatasetError`.

The detection and normalisation functions (in :mod:`vibeml.trainer.formats`, re-exported here) work on
plain lists of dicts and need neither torch nor ``datasets``; only :func:`load_raw_dataset` and
:func:`load_training_dataset` import ``datasets``. ``column_mapping`` renames columns before detection.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibeml.exceptions import DatasetError
from vibeml.trainer.formats import (
    _MAX_PROBLEMS,
    _SCAN_ROWS,
    EXPECTED_COLUMNS,
    FORMATS,
    NormalisedRows,
    RowProblem,
    check_column_mapping,
    detect_format,
    normalise_row,
    normalise_rows,
    output_columns,
)

__all__ = [
    "EXPECTED_COLUMNS",
    "FORMATS",
    "DatasetSource",
    "NormalisedRows",
    "PreparedDataset",
    "RowProblem",
    "detect_format",
    "load_raw_dataset",
    "load_training_dataset",
    "normalise_row",
    "normalise_rows",
    "output_columns",
    "resolve_dataset_source",
]

SUFFIX_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


@dataclass
class PreparedDataset:
    """A dataset ready for ``SFTTrainer`` plus what happened on the way."""

    dataset: Any  # datasets.Dataset
    format: str
    num_rows: int
    skipped: int
    problems: list[str]
    source_columns: list[str]


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from: local files (with a ``datasets`` builder), a saved dataset, or the hub."""

    kind: str  # "files" | "saved" | "hub"
    name: str
    builder: str | None = None
    files: tuple[str, ...] = ()


# -------------------------------------------------------------------------------------------- loading


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or Path(name).suffix.lower() in SUFFIX_BUILDERS
        or name.count("/") > 1
        or "\\" in name
    )


def _data_files_in(folder: Path, limit: int = 20_000) -> list[str]:
    """Data files under ``folder`` (hidden entries skipped); a huge tree is refused, not walked."""
    found: list[str] = []
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        seen += len(names) + len(dirs)
        if seen > limit:
            raise DatasetError(
                f"dataset folder {folder} holds more than {limit} entries; it does not look like a dataset",
                {"dataset": str(folder)},
                "Give the folder that holds only the data files, or the path of one file.",
            )
        found.extend(
            os.path.join(root, n) for n in names if not n.startswith(".") and Path(n).suffix.lower() in SUFFIX_BUILDERS
        )
    return sorted(found)


def resolve_dataset_source(name: str) -> DatasetSource:
    """Decide where ``name`` points: local files, a dataset saved with ``save_to_disk``, or a hub id.

    Raises:
        DatasetError: A path that does not exist, a folder with nothing loadable, an unsupported file
            type, a path that is not a regular file (a FIFO, a device), or a name that is neither a path
            nor a valid hub id.
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError("no dataset given", {"dataset": str(name)})
    path = Path(name).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if exists:
        if path.is_dir():
            if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
                return DatasetSource("saved", str(path))
            files = _data_files_in(path)
            if not files:
                raise DatasetError(
                    f"dataset folder {path} holds no .jsonl/.json/.csv/.parquet files",
                    {"dataset": name},
                    "Put the data files in the folder, or give the path of one file.",
                )
            builders = {SUFFIX_BUILDERS[Path(f).suffix.lower()] for f in files}
            if len(builders) > 1:
                raise DatasetError(
                    f"dataset folder {path} mixes file types ({', '.join(sorted(builders))})",
                    {"dataset": name, "files": len(files)},
                    "Keep one file type per dataset folder.",
                )
            return DatasetSource("files", str(path), builders.pop(), tuple(files))
        from vibeml.safe_paths import check_input_file

        check_input_file(path, "dataset")  # a FIFO or /dev/zero would block or never end
        builder = SUFFIX_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DatasetError(
                f"unsupported dataset file type {path.suffix or '(none)'!r}: {path}",
                {"dataset": name},
                "Use a .jsonl, .json, .csv or .parquet file.",
            )
        return DatasetSource("files", str(path), builder, (str(path),))
    if _looks_like_path(name) or not _HUB_ID.match(name):
        raise DatasetError(
            f"dataset not found: {name!r} is not an existing file or folder, nor a hub dataset id",
            {"dataset": name},
            "Check the path (relative paths are resolved from the trainer's working directory) or give a "
            "hub id like 'tatsu-lab/alpaca'.",
        )
    return DatasetSource("hub", name)


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _hub_error(exc: Exception, name: str, split: str, config: str | None) -> DatasetError:
    text = f"{type(exc).__name__}: {exc}"
    ctx = {"dataset": name, "split": split, "config": config}
    if re.search(r"unknown split|split.*should be one of|bad split", text, re.I):
        return DatasetError(
            f"dataset {name!r} has no split {split!r} ({exc})",
            ctx,
            "Set dataset_split to one of the splits named above (usually 'train').",
        )
    if re.search(r"config name is missing|BuilderConfig .* not found", text, re.I):
        return DatasetError(
            f"dataset {name!r} needs a config name ({exc})",
            ctx,
            "Set dataset_config to one of the configs named above.",
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or re.search(r"offline", text, re.I):
        return DatasetError(
            f"dataset {name!r} is not a local file and the hub cannot be reached (offline mode)",
            ctx,
            "Give a local dataset file, or unset HF_HUB_OFFLINE and make sure the hub is reachable.",
        )
    if re.search(r"doesn't exist|not found|404|cannot find|couldn't find", text, re.I):
        return DatasetError(
            f"dataset {name!r} was not found on the hub",
            ctx,
            "Check the id on huggingface.co/datasets; private or gated datasets need HF_TOKEN.",
        )
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or re.search(r"connect|reach", text, re.I):
        return DatasetError(
            f"could not reach the hub to load dataset {name!r}: {exc}",
            ctx,
            "Check the network (or HF_ENDPOINT), then retry; or give a local dataset file.",
        )
    return DatasetError(f"could not load dataset {name!r}: {text}", ctx)


def load_raw_dataset(name: str, split: str = "train", config: str | None = None) -> Any:
    """Load the rows of ``name`` as a ``datasets.Dataset`` (no normalisation).

    Local files and folders have one split, ``train`` (slices such as ``train[:100]`` work).

    Raises:
        DatasetError: Missing, unreadable, corrupt or empty data; hub not reachable; unknown split.
    """
    source = resolve_dataset_source(name)
    import datasets

    _quiet_datasets()
    ctx = {"dataset": name, "split": split}
    if source.kind == "hub":
        try:
            ds = datasets.load_dataset(name, config, split=split)
        except DatasetError:
            raise
        except Exception as exc:
            raise _hub_error(exc, name, split, config) from exc
    elif source.kind == "saved":
        try:
            loaded = datasets.load_from_disk(source.name)
        except Exception as exc:
            raise DatasetError(f"could not read saved dataset {name}: {exc}", ctx) from exc
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DatasetError(
                    f"saved dataset {name} has no split {split!r} (it has {sorted(loaded)})",
                    ctx,
                    "Set dataset_split to one of the splits named above.",
                )
            ds = loaded[split]
        else:
            ds = loaded
    else:
        if not split.startswith("train"):
            raise DatasetError(
                f"local dataset files have a single split 'train', not {split!r}",
                ctx,
                "Leave dataset_split as 'train' (or a slice like 'train[:1000]') for local files.",
            )
        for f in source.files:
            try:
                blank = os.path.getsize(f) == 0 or (os.path.getsize(f) < 65536 and not Path(f).read_bytes().strip())
            except OSError as exc:
                raise DatasetError(f"cannot read dataset file {f}: {exc}", ctx) from exc
            if blank and len(source.files) == 1:
                raise DatasetError(
                    f"dataset file {f} is empty", ctx, "Fill the file with examples (one JSON object a line)."
                )
        try:
            ds = datasets.load_dataset(source.builder, data_files=list(source.files), split=split)
        except Exception as exc:
            cause = exc.__cause__ or exc.__context__
            detail = f"{cause}" if cause is not None else f"{exc}"
            raise DatasetError(
                f"cannot read dataset {name} as {source.builder}: {detail or type(exc).__name__}",
                {**ctx, "format": source.builder},
                "Check that the file is valid (JSONL: one JSON object per line, the same type in each "
                "column; CSV: a header row) and not truncated.",
            ) from exc
    if not isinstance(ds, datasets.Dataset):
        raise DatasetError(
            f"dataset {name!r} did not load as a single split (got {type(ds).__name__})",
            ctx,
            "Set dataset_split (e.g. 'train').",
        )
    if len(ds) == 0:
        raise DatasetError(f"dataset {name!r} (split {split!r}) is empty", ctx, "Give a dataset with rows.")
    return ds


def _features(fmt: str) -> Any:
    from datasets import Features, Value

    message = {"role": Value("string"), "content": Value("string")}
    cols: dict[str, Any] = {"_vibeml_problem": Value("string")}
    if fmt in ("alpaca", "prompt_completion"):
        cols.update(prompt=[message], completion=[message])
    elif fmt in ("messages", "sharegpt"):
        cols.update(messages=[message])
    else:
        cols.update(text=Value("string"))
    return Features(cols)


def _normalise_batch(batch: dict[str, list[Any]], indices: list[int], fmt: str) -> dict[str, list[Any]]:
    """``datasets.map`` adapter around :func:`normalise_row`; bad rows get a problem and empty values."""
    keys = list(batch)
    out: dict[str, list[Any]] = {c: [] for c in (*output_columns(fmt), "_vibeml_problem")}
    for j, idx in enumerate(indices):
        row = {k: batch[k][j] for k in keys}
        try:
            values = normalise_row(row, fmt)
            problem = ""
        except RowProblem as exc:
            values = {c: ("" if c == "text" else []) for c in output_columns(fmt)}
            problem = f"row {idx + 1}: {exc}"
        for c, v in values.items():
            out[c].append(v)
        out["_vibeml_problem"].append(problem)
    return out


def load_training_dataset(
    name: str,
    dataset_format: str = "auto",
    split: str = "train",
    config: str | None = None,
    column_mapping: Mapping[str, str] | None = None,
) -> PreparedDataset:
    """Load, detect and normalise a dataset for SFT (see the module docstring for the rules).

    Args:
        column_mapping: ``{existing column: new name}`` applied before detection (e.g.
            ``{"question": "instruction", "answer": "output"}``).

    Raises:
        DatasetError: Loading failed, the mapping does not fit, no format matches, or no row is usable.
    """
    ds = load_raw_dataset(name, split, config)
    mapping = check_column_mapping(list(ds.column_names), column_mapping)
    if mapping:
        ds = ds.rename_columns(mapping)
    columns = list(ds.column_names)
    sample = ds.select(range(min(len(ds), _SCAN_ROWS))).to_list()
    fmt = detect_format(sample, dataset_format)
    total = len(ds)
    normalised = ds.map(
        _normalise_batch,
        batched=True,
        with_indices=True,
        fn_kwargs={"fmt": fmt},
        remove_columns=columns,
        features=_features(fmt),
        desc="Normalising dataset",
    )
    problems_col = normalised["_vibeml_problem"]
    problems = [p for p in problems_col if p]
    good = normalised.filter(lambda p: not p, input_columns="_vibeml_problem")
    good = good.remove_columns("_vibeml_problem")
    if len(good) == 0:
        raise DatasetError(
            f"no usable rows in dataset {name!r} as '{fmt}' ({total} rows, all malformed; first: "
            f"{'; '.join(problems[:3])})",
            {"dataset": name, "format": fmt, "rows": total, "columns_found": columns},
            f"Each '{fmt}' row needs {', '.join(EXPECTED_COLUMNS[fmt])} filled in; fix the rows named above.",
        )
    return PreparedDataset(
        dataset=good,
        format=fmt,
        num_rows=len(good),
        skipped=len(problems),
        problems=problems[:_MAX_PROBLEMS],
        source_columns=columns,
    )
