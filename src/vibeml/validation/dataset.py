"""Dataset checks before launch: can the trainer read it, which format is it, how many rows and tokens.

Local files (``.jsonl``, ``.json``, ``.csv``, ``.parquet``, or a folder of one type) and hub datasets (data
files fetched through ``huggingface_hub``) are read with the standard library (parquet with pyarrow),
without ``datasets`` or torch. Detection and normalisation are the trainer's own
(:mod:`vibeml.trainer.formats`), so what passes here is what the trainer accepts. Token statistics use
the model's tokenizer when one is given and loads (its chat template applied, as in training);
otherwise they are estimated as characters / 4, and labelled so.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.estimate.cost import DatasetStats
from vibeml.exceptions import DatasetError, VibeMLError
from vibeml.trainer.data import SUFFIX_BUILDERS, resolve_dataset_source
from vibeml.trainer.formats import (
    EXPECTED_COLUMNS,
    check_column_mapping,
    columns_of,
    detect_format,
    normalise_rows,
    rename_row,
)
from vibeml.validation.hub import HubAccess, hub_page

if TYPE_CHECKING:
    from vibeml.settings import Settings

__all__ = ["DatasetReport", "DatasetValidator", "TokenStats", "render_for_count"]

#: File-name words ``datasets`` reads as a split, and the split they name.
_SPLIT_KEYWORDS = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("validation", "valid", "val", "dev"), "validation"),
    **dict.fromkeys(("test", "testing", "eval", "evaluation"), "test"),
}
#: Rows normalised to check them (the rest are counted, not parsed into formats).
MAX_CHECKED_ROWS = 50_000
#: Rows whose tokens are counted for the statistics.
TOKEN_SAMPLE_ROWS = 1_000
#: Hub data downloaded at most (bytes); beyond it the row count is extrapolated by size.
HUB_DOWNLOAD_BUDGET = 256 * 2**20
CHARS_PER_TOKEN = 4.0
#: Largest whole-file JSON read into memory (JSON Lines are streamed, each line at most MAX_LINE_CHARS).
MAX_JSON_BYTES = 512 * 2**20
MAX_LINE_CHARS = 64 * 2**20
#: Deepest nesting of a row (messages with content parts need about 4; JSON from elsewhere rarely 20).
MAX_NESTING = 64
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "config.json",
)


class TokenStats(BaseModel):
    """Tokens per usable row (as the trainer renders it: chat template for conversations)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["tokenizer", "estimate"] = Field(description="tokenizer, or estimate = characters / 4.")
    tokenizer: str | None = None
    rows_counted: int
    mean: float
    median: float
    p95: float
    max: int
    total_counted: int
    max_seq_length: int | None = None
    rows_over_max_seq_length: int | None = Field(None, description="Counted rows longer than max_seq_length.")


class DatasetReport(BaseModel):
    """Everything the dataset check found."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    source: Literal["local", "hub"]
    format: str
    format_detected: bool = Field(description="True when the format was detected (dataset_format='auto').")
    columns: list[str]
    column_mapping: dict[str, str] = Field(default_factory=dict)
    num_rows: int
    num_rows_exact: bool = True
    rows_checked: int
    usable_rows: int = Field(description="Of the checked rows, those the trainer will use.")
    skipped_rows: int
    problems: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    size_bytes: int = 0
    token_stats: TokenStats | None = None
    stats: DatasetStats | None = Field(None, description="For the estimator.")
    private: bool | None = None
    gated: bool | None = None
    license: str | None = None
    url: str | None = None
    warnings: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------------------------- reading


def _not_utf8(path: Path, exc: UnicodeDecodeError, line: int | None = None) -> DatasetError:
    where = f" (line {line})" if line else f" (byte {exc.start})"
    return DatasetError(
        f"{path} is not UTF-8 text{where}: it looks binary or uses another encoding",
        {"dataset": str(path), **({"line": line} if line else {"byte": exc.start})},
        "Save the file as UTF-8 text (e.g. `iconv -f latin1 -t utf-8`), or give a .parquet file.",
    )


def _too_deep(path: Path, line: int | None = None) -> DatasetError:
    return DatasetError(
        f"{path}{f' line {line}' if line else ''} is nested more than {MAX_NESTING} levels deep",
        {"dataset": str(path), "max_nesting": MAX_NESTING, **({"line": line} if line else {})},
        "Training rows are flat records or lists of messages; check that the file is the dataset you meant.",
    )


def _nesting_over(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` deep (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _json_rows(path: Path) -> Iterator[Any]:
    """Rows of a .json/.jsonl file: JSON Lines, a JSON list of objects, or a dict of equal-length columns."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    if path.suffix.lower() == ".json" and head[:1] in (b"[", b"{"):
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DatasetError(
                f"{path} is one JSON document of {size / 2**20:,.0f} MiB; VibeML reads whole-file JSON up to "
                f"{MAX_JSON_BYTES // 2**20} MiB",
                {"dataset": str(path), "size_bytes": size},
                "Convert it to JSON Lines (one object a line, .jsonl), which is read as a stream.",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            if "Extra data" not in str(exc):  # several objects, one per line: JSON Lines in a .json file
                raise DatasetError(
                    f"{path} is not valid JSON: {exc}",
                    {"dataset": str(path)},
                    "Fix the JSON (or write one object per line, JSONL).",
                ) from exc
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        except RecursionError:
            raise _too_deep(path) from None
        else:
            if _nesting_over(data, MAX_NESTING + 2):  # the list (or column dict) and its rows add a level
                raise _too_deep(path)
            if isinstance(data, list):
                yield from data
                return
            if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
                lengths = {len(v) for v in data.values()}
                if len(lengths) == 1:
                    keys = list(data)
                    for i in range(lengths.pop()):
                        yield {k: data[k][i] for k in keys}
                    return
            raise DatasetError(
                f"{path} holds a JSON {type(data).__name__}, not a list of rows",
                {"dataset": str(path)},
                "Give a JSON list of objects, or one JSON object per line (JSONL).",
            )
    with open(path, encoding="utf-8", errors="strict") as fh:
        number = 0
        try:
            while True:
                line = fh.readline(MAX_LINE_CHARS + 1)
                if not line:
                    return
                number += 1
                if len(line) > MAX_LINE_CHARS:
                    raise DatasetError(
                        f"{path} line {number} is longer than {MAX_LINE_CHARS // 2**20} Mi characters",
                        {"dataset": str(path), "line": number},
                        "One JSON object a line; a training row is far shorter. Check the file is a dataset.",
                    )
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{path} line {number} is not valid JSON: {exc.msg}",
                        {"dataset": str(path), "line": number},
                        "Each line of a JSONL file must be one complete JSON object.",
                    ) from exc
                except RecursionError:
                    raise _too_deep(path, number) from None
                if _nesting_over(row):
                    raise _too_deep(path, number)
                yield row
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc, number + 1) from None


def _csv_rows(path: Path) -> Iterator[Any]:
    reader: Any = None
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise DatasetError(
                    f"{path} has no header row", {"dataset": str(path)}, "Add a header row naming the columns."
                )
            for row in reader:
                yield {k: v for k, v in row.items() if k is not None}
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    except csv.Error as exc:  # a NUL byte, a field over the size limit, a broken quote
        line = getattr(reader, "line_num", 0) or 1
        raise DatasetError(
            f"{path} is not a readable CSV file (line {line}): {exc}",
            {"dataset": str(path), "line": line},
            "Save it as UTF-8 CSV with a header row (binary data or NUL bytes cannot be read), or use JSONL.",
        ) from None


def _parquet_rows(path: Path) -> Iterator[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the training extra
        raise DatasetError("reading parquet needs pyarrow", {"dataset": str(path)}, "pip install pyarrow") from exc
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=2048):
            yield from batch.to_pylist()
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{path} is not a readable parquet file: {exc}", {"dataset": str(path)}) from exc


def _read_files(files: list[str], max_rows: int) -> tuple[list[Any], int]:
    """(the first ``max_rows`` rows, the number of rows in all files)."""
    kept: list[Any] = []
    total = 0
    for name in files:
        path = Path(name)
        suffix = path.suffix.lower()
        rows = (
            _parquet_rows(path) if suffix == ".parquet" else (_csv_rows(path) if suffix == ".csv" else _json_rows(path))
        )
        for row in rows:
            total += 1
            if len(kept) < max_rows:
                kept.append(row)
    return kept, total


# ----------------------------------------------------------------------------------------- tokens


def render_for_count(row: Mapping[str, Any]) -> str:
    """A normalised row as ChatML-style text (what a chat template makes of it, roughly)."""
    if "text" in row:
        return str(row["text"])
    messages = list(row.get("messages") or []) or [*row.get("prompt", []), *row.get("completion", [])]
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def _token_counter(tokenizer: Any) -> Any:
    def count(row: Mapping[str, Any]) -> int:
        if "text" in row:
            return len(tokenizer(str(row["text"]), add_special_tokens=True)["input_ids"])
        messages = list(row.get("messages") or []) or [*row.get("prompt", []), *row.get("completion", [])]
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, Mapping):
            ids = ids["input_ids"]
        return len(ids)

    return count


def _token_stats(
    rows: list[dict[str, Any]], tokenizer: Any | None, name: str | None, max_seq_length: int | None
) -> TokenStats | None:
    if not rows:
        return None
    if tokenizer is not None:
        counts = [_token_counter(tokenizer)(r) for r in rows]
        method: Literal["tokenizer", "estimate"] = "tokenizer"
    else:
        counts = [max(1, round(len(render_for_count(r)) / CHARS_PER_TOKEN)) for r in rows]
        method, name = "estimate", None
    ordered = sorted(counts)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return TokenStats(
        method=method,
        tokenizer=name,
        rows_counted=len(counts),
        mean=round(statistics.fmean(counts), 2),
        median=float(statistics.median(counts)),
        p95=float(p95),
        max=max(counts),
        total_counted=sum(counts),
        max_seq_length=max_seq_length,
        rows_over_max_seq_length=None if max_seq_length is None else sum(c > max_seq_length for c in counts),
    )


# ------------------------------------------------------------------------------------------ validator


class DatasetValidator:
    """Checks local and hub datasets the way the trainer will read them.

    Args:
        endpoint: Hub URL (default ``settings.hub.endpoint``, i.e. ``HF_ENDPOINT``, or huggingface.co).
        token: Hugging Face token (default, with ``settings``: VibeML's credential store, then ``HF_TOKEN``).
        settings: VibeML's settings: the hub section, the credential store and ``HF_TOKEN`` (without them
            only the arguments and the hub library's own defaults count).
        cache_dir: Hub cache folder (default: the hub's).
        max_rows: Rows normalised to check them; token_sample: rows whose tokens are counted.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        cache_dir: str | None = None,
        max_rows: int = MAX_CHECKED_ROWS,
        token_sample: int = TOKEN_SAMPLE_ROWS,
        download_budget: int = HUB_DOWNLOAD_BUDGET,
    ) -> None:
        self._endpoint, self._token, self._settings, self._cache_dir = endpoint, token, settings, cache_dir
        self.max_rows, self.token_sample, self.download_budget = max_rows, token_sample, download_budget
        self._access: HubAccess | None = None

    @property
    def hub(self) -> HubAccess:
        if self._access is None:
            self._access = HubAccess.resolve(
                self._endpoint, self._token, cache_dir=self._cache_dir, settings=self._settings
            )
        return self._access

    def validate_dataset(
        self,
        dataset: str,
        *,
        model: str | None = None,
        dataset_format: str = "auto",
        column_mapping: Mapping[str, str] | None = None,
        split: str = "train",
        max_seq_length: int | None = None,
    ) -> DatasetReport:
        """Read, detect, normalise and measure ``dataset``.

        Args:
            dataset: Local file/folder or hub dataset id.
            model: Model whose tokenizer counts tokens (local dir or hub id); None: chars / 4 estimate.
            dataset_format: ``auto`` or a format name (checked against the columns).
            column_mapping: ``{existing column: new name}`` applied before detection.
            split: Hub split whose files are read (local files are all one split).
            max_seq_length: Also count rows longer than this.

        Raises:
            DatasetError: Missing/unreadable data, no format matching the columns (the message names the
                columns found and the ones expected), or no usable row; offline for hub datasets.
            CredentialError: Gated without access, or an invalid token.
        """
        source = resolve_dataset_source(dataset)
        if source.kind == "saved":
            raise DatasetError(
                f"{dataset} is a dataset saved with save_to_disk: the check reads data files only",
                {"dataset": dataset},
                "Export it to JSONL or parquet (Dataset.to_json / to_parquet), or launch without validating.",
            )
        report_extra: dict[str, Any] = {}
        if source.kind == "files":
            files = list(source.files)
            rows, total = _read_files(files, self.max_rows)
            exact = True
        else:
            files, rows, total, exact, report_extra = self._hub_rows(dataset, split)
        if not rows:
            raise DatasetError(
                f"dataset {dataset!r} has no rows",
                {"dataset": dataset},
                "Fill the file with examples (one JSON object a line).",
            )
        columns = columns_of(rows)
        mapping = check_column_mapping(columns, column_mapping)
        if mapping:
            rows = [rename_row(r, mapping) for r in rows]
        try:
            fmt = detect_format(rows, dataset_format)
        except DatasetError as exc:
            if "columns_found" in exc.context:
                exc.recovery_suggestion = (
                    f"{exc.recovery_suggestion} Or map your columns onto a format, e.g. "
                    "column_mapping={'question': 'instruction', 'answer': 'output'} "
                    "(CLI: --column-mapping question=instruction,answer=output)."
                )
            raise
        normalised = normalise_rows(rows, fmt)
        if not normalised.rows:
            raise DatasetError(
                f"no usable rows in dataset {dataset!r} as '{fmt}' ({len(rows)} checked, all malformed; first: "
                f"{'; '.join(normalised.problems[:3])})",
                {"dataset": dataset, "format": fmt, "columns_found": columns_of(rows)},
                f"Each '{fmt}' row needs {', '.join(EXPECTED_COLUMNS[fmt])} filled in; fix the rows named above.",
            )
        warnings: list[str] = list(report_extra.pop("warnings", []))
        tokenizer, tok_name = (None, None)
        if model:
            tokenizer, tok_name, why = self._tokenizer(model)
            if tokenizer is None:
                warnings.append(
                    f"the tokenizer of {model} could not be loaded ({why}): token counts are estimates (characters / 4)"
                )
        sample = normalised.rows[: self.token_sample]
        try:
            tokens = _token_stats(sample, tokenizer, tok_name, max_seq_length)
        except Exception as exc:  # a tokenizer that cannot render these rows: estimate instead
            warnings.append(f"counting with the tokenizer failed ({type(exc).__name__}: {exc}): estimates used")
            tokens = _token_stats(sample, None, None, max_seq_length)
        usable_share = len(normalised.rows) / len(rows)
        usable_total = max(1, round(total * usable_share))
        stats = None
        if tokens is not None:
            complete = exact and len(rows) == total and tokens.rows_counted == len(normalised.rows)
            stats = DatasetStats(
                rows=usable_total,
                mean_tokens_per_row=max(tokens.mean, 1e-6),
                total_tokens=tokens.total_counted if complete and tokens.total_counted else None,
            )
        if tokens is not None and tokens.rows_over_max_seq_length:
            warnings.append(
                f"{tokens.rows_over_max_seq_length} of {tokens.rows_counted} counted rows are longer "
                f"than max_seq_length {max_seq_length} and will be truncated"
            )
        if normalised.skipped:
            warnings.append(f"{normalised.skipped} of {len(rows)} checked rows are malformed and will be skipped")
        if len(rows) < total:
            warnings.append(f"checked the first {len(rows)} of {total} rows")
        return DatasetReport(
            dataset=dataset,
            source="local" if source.kind == "files" else "hub",
            format=fmt,
            format_detected=dataset_format == "auto",
            columns=columns,
            column_mapping=mapping,
            num_rows=total,
            num_rows_exact=exact,
            rows_checked=len(rows),
            usable_rows=len(normalised.rows),
            skipped_rows=normalised.skipped,
            problems=normalised.problems,
            files=files,
            size_bytes=sum(Path(f).stat().st_size for f in files if Path(f).is_file()),
            token_stats=tokens,
            stats=stats,
            warnings=warnings,
            **report_extra,
        )

    # -------------------------------------------------------------------------------------- hub

    def _hub_rows(self, repo_id: str, split: str) -> tuple[list[str], list[Any], int, bool, dict[str, Any]]:
        hub = self.hub
        hub.check_online(repo_id, "dataset")
        api = hub.api()
        try:
            info = api.dataset_info(repo_id, files_metadata=True, token=hub.hf_token)
            if info.gated or info.private:
                api.auth_check(repo_id, repo_type="dataset", token=hub.hf_token)
        except VibeMLError:
            raise
        except Exception as exc:
            raise hub.translate(exc, repo_id, "dataset") from exc
        siblings = [
            s
            for s in (info.siblings or [])
            if Path(s.rfilename).suffix.lower() in SUFFIX_BUILDERS
            and not any(part.startswith(".") for part in Path(s.rfilename).parts)
        ]
        if not siblings:
            raise DatasetError(
                f"hub dataset {repo_id!r} has no .jsonl/.json/.csv/.parquet data files",
                {"dataset": repo_id, "files": [s.rfilename for s in (info.siblings or [])][:20]},
                "Script-based datasets are not supported; use a dataset with data files (or its parquet conversion).",
            )
        in_split = [
            s
            for s in siblings
            if split.split("[")[0]
            in Path(s.rfilename).as_posix().replace("-", "/").replace("_", "/").replace(".", "/").split("/")
        ]
        chosen = in_split or siblings
        builders: dict[str, list[Any]] = {}
        for s in chosen:
            builders.setdefault(SUFFIX_BUILDERS[Path(s.rfilename).suffix.lower()], []).append(s)
        kind = "parquet" if "parquet" in builders else next(iter(builders))
        chosen = sorted(builders[kind], key=lambda s: s.rfilename)
        total_size = sum(s.size or 0 for s in chosen)
        local: list[str] = []
        used = 0
        for s in chosen:
            if local and used + (s.size or 0) > self.download_budget:
                break
            local.append(hub.download(repo_id, s.rfilename, "dataset", info.sha))
            used += s.size or Path(local[-1]).stat().st_size
        rows, counted = _read_files(local, self.max_rows)
        exact = len(local) == len(chosen)
        total = counted if exact or not used else max(counted, round(counted * total_size / used))
        card = info.card_data
        license_ = getattr(card, "license", None) if card is not None else None
        extra: dict[str, Any] = {
            "private": bool(info.private),
            "gated": bool(info.gated),
            "url": hub_page(repo_id, "dataset"),
            "license": license_ if isinstance(license_, str) else (", ".join(license_) if license_ else None),
        }
        warnings = []
        if not in_split:
            warnings.append(f"no file names the split {split!r}: all data files were read as one split")
        if not exact:
            warnings.append(f"read {len(local)} of {len(chosen)} data files; the row count is extrapolated by size")
        extra["warnings"] = warnings
        return [s.rfilename for s in chosen[: len(local)]], rows, total, exact, extra

    def check_hub_split(self, repo_id: str, splits: list[str], config: str | None = None) -> list[str]:
        """The splits of a hub dataset, from its metadata only (no data downloaded); raises when one of
        ``splits`` (or ``config``) is not among them.

        Splits come from the card's ``configs`` (their ``data_files`` splits) when it declares them, else
        from the data file names as ``datasets`` reads them (train/training, validation/valid/val/dev,
        test/testing/eval/evaluation); data files naming none are one ``train`` split.

        Raises:
            DatasetError: Not found, no such split or config; CloudProviderError: offline or unreachable.
            CredentialError: Gated or private without access.
        """
        hub = self.hub
        hub.check_online(repo_id, "dataset")
        api = hub.api()
        try:
            info = api.dataset_info(repo_id, token=hub.hf_token)
        except VibeMLError:
            raise
        except Exception as exc:
            raise hub.translate(exc, repo_id, "dataset") from exc
        ctx: dict[str, Any] = {"dataset": repo_id, "split": "+".join(splits), "config": config}
        card = info.card_data
        declared = getattr(card, "configs", None) if card is not None else None
        if declared is None and card is not None and hasattr(card, "to_dict"):
            declared = card.to_dict().get("configs")
        available: list[str] | None = None
        if isinstance(declared, list) and declared and all(isinstance(c, Mapping) for c in declared):
            names = [str(c.get("config_name", "default")) for c in declared]
            if config is not None and config not in names:
                raise DatasetError(
                    f"hub dataset {repo_id!r} has no config {config!r} (it has {', '.join(map(repr, names))})",
                    {**ctx, "available_configs": names},
                    f"Set --dataset-config to one of {', '.join(names)}, or leave it out for the default.",
                )
            chosen = next(
                (c for c in declared if str(c.get("config_name", "default")) == config),
                next((c for c in declared if c.get("default")), declared[0]),
            )
            files = chosen.get("data_files")
            if isinstance(files, list) and files and all(isinstance(f, Mapping) for f in files):
                available = [str(f.get("split", "train")) for f in files]
            elif files is not None:
                available = ["train"]
        elif config is None:
            data = [
                s.rfilename
                for s in (info.siblings or [])
                if Path(s.rfilename).suffix.lower() in SUFFIX_BUILDERS
                and not any(part.startswith(".") for part in Path(s.rfilename).parts)
            ]
            if data:
                found = {
                    _SPLIT_KEYWORDS[token]
                    for name in data
                    for token in re.split(r"[-_./ ]|\d+", name.lower())
                    if token in _SPLIT_KEYWORDS
                }
                available = sorted(found) or ["train"]
        if available is None:
            return []  # a script, a config the card does not declare, or no data files: the trainer decides
        missing = [n for n in splits if n not in available]
        if missing:
            raise DatasetError(
                f"hub dataset {repo_id!r} has no split {missing[0]!r} (it has {', '.join(map(repr, available))})",
                {**ctx, "available_splits": available},
                f"Set --dataset-split to one of {', '.join(available)} (a slice such as "
                f"'{available[0]}[:1000]' also works).",
            )
        return available

    def _tokenizer(self, model: str) -> tuple[Any | None, str | None, str]:
        """(tokenizer, its name, why not) for a local model dir or a hub id."""
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover - transformers comes with the training extra
            return None, None, f"transformers is not installed: {exc}"
        folder: str | None
        path = Path(model).expanduser()
        if path.is_dir():
            folder = str(path)
        else:
            try:
                folder = self._hub_tokenizer_dir(model)
            except VibeMLError as exc:
                return None, None, exc.message
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        except Exception as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        if not getattr(tokenizer, "chat_template", None):
            from vibeml.trainer.modeling import CHATML_FALLBACK_TEMPLATE

            tokenizer.chat_template = CHATML_FALLBACK_TEMPLATE  # what the trainer uses for such models
        return tokenizer, model, ""

    def _hub_tokenizer_dir(self, repo_id: str) -> str:
        hub = self.hub
        hub.check_online(repo_id, "model")
        try:
            info = hub.api().model_info(repo_id, token=hub.hf_token)
        except Exception as exc:
            raise hub.translate(exc, repo_id, "model") from exc
        names = {s.rfilename for s in (info.siblings or [])}
        wanted = [n for n in TOKENIZER_FILES if n in names]
        if not any(n in names for n in ("tokenizer.json", "tokenizer.model", "vocab.json")):
            raise DatasetError(f"model {repo_id!r} has no tokenizer files", {"model": repo_id})
        paths = [hub.download(repo_id, n, "model", info.sha) for n in wanted]
        return str(Path(paths[0]).parent)
