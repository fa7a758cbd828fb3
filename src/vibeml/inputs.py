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
    "check_dataset_split",
    "check_hub_dataset",
    "check_local_dataset",
    "check_local_model",
    "dataset_stats",
    "hub_secrets",
    "hub_token",
    "looks_like_path",
    "resolve_local_inputs",
    "split_names",
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


#: A split as ``datasets`` reads it: names, each with an optional slice, joined by ``+``.
_SPLIT = re.compile(r"^\s*\w[\w.-]*\s*(\[[^\]]*\])?(\s*\+\s*\w[\w.-]*\s*(\[[^\]]*\])?)*\s*$")


def split_names(split: str) -> list[str]:
    """The split names in a split expression (``train[:100]+test`` → ``["train", "test"]``).

    Raises:
        DatasetError: Not a split expression.
    """
    if not _SPLIT.match(split):
        raise DatasetError(
            f"{split!r} is not a dataset split (a name such as 'train', optionally sliced: 'train[:1000]')",
            {"split": split},
            "Give --dataset-split as a split name, e.g. 'train', 'test' or 'train[:1000]'.",
        )
    return [part.split("[")[0].strip() for part in split.split("+")]


def check_dataset_split(dataset: Path, request: TrainingRequest) -> None:
    """Refuse a split (or config) a local dataset does not have, as the trainer would after renting.

    Files and folders of files have one split, ``train``, and no configs; a ``save_to_disk`` folder of
    several splits has the splits its ``dataset_dict.json`` names.

    Raises:
        DatasetError: The split or config does not exist in the local data.
    """
    import json

    from vibeml.trainer.data import resolve_dataset_source

    names = split_names(request.dataset_split)
    ctx: dict[str, Any] = {"dataset": str(dataset), "split": request.dataset_split}
    source = resolve_dataset_source(str(dataset))
    if source.kind == "files":
        if request.dataset_config is not None:
            raise DatasetError(
                f"local dataset files have no configs, so dataset_config {request.dataset_config!r} cannot apply",
                {**ctx, "config": request.dataset_config},
                "Drop --dataset-config for local files (it names a configuration of a hub dataset).",
            )
        available = ["train"]
    else:
        index = dataset / "dataset_dict.json"
        if not is_file(index):
            return  # a single saved Dataset: the trainer uses it whatever the split
        try:
            available = [str(x) for x in json.loads(index.read_text(encoding="utf-8"))["splits"]]
        except (OSError, ValueError, KeyError, TypeError):
            return  # unreadable index: the trainer reports it
    missing = [n for n in names if n not in available]
    if missing:
        raise DatasetError(
            f"dataset {dataset} has no split {missing[0]!r} (it has {', '.join(repr(a) for a in available)})",
            {**ctx, "available_splits": available},
            f"Set --dataset-split to one of {', '.join(available)} (a slice such as '{available[0]}[:1000]' "
            "also works).",
        )


def check_local_model(path: Path, model: str) -> None:
    """Refuse a local model directory whose config.json the trainer could not load (unreadable, no
    ``model_type``, or missing the sizes every causal LM has).

    Raises:
        ModelNotFoundError: The config is not a usable model config.
    """
    from vibeml.catalog.architectures import architecture_from_config, load_config_file

    suggestion = "Point --model at a directory saved with save_pretrained() (its config.json intact), or a hub id."
    try:
        config = load_config_file(path)
        if not config.get("model_type"):
            raise ModelNotFoundError(
                f"{path / 'config.json'} names no model_type: transformers cannot tell which architecture it is",
                {"model": model},
                suggestion,
            )
        architecture_from_config(config, name=model, source="local")
    except ModelNotFoundError:
        raise
    except VibeMLError as exc:
        raise ModelNotFoundError(
            f"{model} is not a usable model directory: {exc.message}", {"model": model}, suggestion
        ) from exc


def check_hub_dataset(request: TrainingRequest, settings: Settings | None) -> None:
    """Refuse a hub dataset whose split or config the hub's metadata shows does not exist (no download).

    Skipped when the hub is offline (HF_HUB_OFFLINE) or cannot be reached: the trainer reports those.

    Raises:
        DatasetError: The dataset, its split or its config does not exist.
        CredentialError: The dataset is gated or private and the token has no access.
    """
    from vibeml.exceptions import CloudProviderError
    from vibeml.validation.dataset import DatasetValidator
    from vibeml.validation.hub import is_offline

    names = split_names(request.dataset_split)
    if is_offline(settings.hub if settings is not None else None):
        return  # HF_HUB_OFFLINE: the hub is not asked; the trainer reads the dataset where it runs
    validator = DatasetValidator(settings=settings)
    try:
        validator.check_hub_split(request.dataset, names, request.dataset_config)
    except CloudProviderError:
        return  # the hub is unreachable now: not a verdict on the dataset
    except DatasetError as exc:
        if exc.context.get("offline"):
            return
        raise


def check_cached_when_offline(request: TrainingRequest, settings: Settings) -> None:
    """A run on this machine with the hub offline (HF_HUB_OFFLINE) can read a hub model or dataset only from
    the local caches: refuse one that is not there before the trainer starts, instead of a job that fails.

    Raises:
        ModelNotFoundError: The hub model is not in the hub cache.
        DatasetError: The hub dataset is in neither the hub cache nor the datasets cache.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    hub_cache = Path(settings.hub.cache_dir) if settings.hub.cache_dir else Path(constants.HF_HUB_CACHE)
    if _HUB_ID.match(request.model) and not exists(Path(request.model).expanduser()):
        found = try_to_load_from_cache(request.model, "config.json", cache_dir=hub_cache)
        if not isinstance(found, str):
            raise ModelNotFoundError(
                f"model {request.model!r} is not in the local hub cache, and the hub is offline (HF_HUB_OFFLINE)",
                {"model": request.model, "offline": True, "cache": str(hub_cache)},
                "Unset HF_HUB_OFFLINE so the trainer can download it, download it once "
                f"(`hf download {request.model}`), or give a local model directory.",
            )
    if _HUB_ID.match(request.dataset) and not exists(Path(request.dataset).expanduser()):
        hf_home = settings.hub.hf_home or Path(constants.HF_HOME)
        datasets_cache = (settings.hub.datasets_cache or hf_home / "datasets").expanduser()
        org, _, name = request.dataset.partition("/")
        places = (hub_cache / f"datasets--{org}--{name}", datasets_cache / f"{org}___{name}")
        if not any(exists(p) for p in places):
            raise DatasetError(
                f"dataset {request.dataset!r} is not in the local caches, and the hub is offline (HF_HUB_OFFLINE)",
                {"dataset": request.dataset, "offline": True, "looked_in": [str(p) for p in places]},
                "Unset HF_HUB_OFFLINE so the trainer can download it, download it once "
                f"(`hf download --repo-type dataset {request.dataset}`), or give a local .jsonl/.csv/.parquet file.",
            )


def resolve_local_inputs(request: TrainingRequest, settings: Settings | None = None) -> tuple[TrainingRequest, bool]:
    """Make local paths absolute (the trainer runs elsewhere) and reject missing ones early; check a local
    model's config, a local dataset's split, format and columns, and a hub dataset's split and config
    (through ``settings``' hub, when given and online).

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
        check_local_model(model_path.resolve(), request.model)
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
        check_dataset_split(data_path.resolve(), request)
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
        if settings is not None:
            check_hub_dataset(request, settings)
    if request.output_dir:
        updates["output_dir"] = str(Path(request.output_dir).expanduser().resolve())
    if updates:
        request = request.model_copy(update=updates)
    return request, local
