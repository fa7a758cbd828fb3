"""Dataset formats: detection and normalisation to what TRL's ``SFTTrainer`` consumes (pure Python).

This module imports nothing heavy and nothing from VibeML but its error class, which it replaces with a
stand-in when VibeML is not installed: :mod:`vibeml.workflows.script` embeds this file verbatim in the
standalone training scripts it writes, so the trainer, the validators and those scripts share one
implementation. See :mod:`vibeml.trainer.data` for the formats' rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    from vibeml.exceptions import DatasetError
except ImportError:  # pragma: no cover - only inside a standalone script without VibeML

    class DatasetError(ValueError):  # type: ignore[no-redef]
        """Stand-in for ``vibeml.exceptions.DatasetError`` (message, context, recovery suggestion)."""

        def __init__(
            self, message: str, context: Mapping[str, Any] | None = None, recovery_suggestion: str | None = None
        ) -> None:
            super().__init__(message)
            self.message = message
            self.context = dict(context or {})
            self.recovery_suggestion = recovery_suggestion

        def __str__(self) -> str:
            return self.message + (f" ({self.recovery_suggestion})" if self.recovery_suggestion else "")


__all__ = [
    "EXPECTED_COLUMNS",
    "FORMATS",
    "NormalisedRows",
    "RowProblem",
    "check_column_mapping",
    "columns_of",
    "detect_format",
    "normalise_row",
    "normalise_rows",
    "output_columns",
    "rename_row",
]

FORMATS = ("alpaca", "messages", "sharegpt", "prompt_completion", "text")

#: Columns each format needs (alternatives separated by ``|``), for error messages.
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output|response"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}

_ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}

_MAX_PROBLEMS = 5
_SCAN_ROWS = 100


class RowProblem(ValueError):
    """One row cannot be used (it is skipped and counted)."""


@dataclass
class NormalisedRows:
    """Result of :func:`normalise_rows`."""

    rows: list[dict[str, Any]]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- detection


def columns_of(rows: Sequence[Any]) -> list[str]:
    """Column names of the first rows, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows[:_SCAN_ROWS]:
        if isinstance(row, Mapping):
            for key in row:
                seen.setdefault(str(key), None)
    return list(seen)


def _first_value(rows: Sequence[Any], column: str) -> Any:
    for row in rows[:_SCAN_ROWS]:
        if isinstance(row, Mapping) and row.get(column) is not None:
            return row[column]
    return None


def _missing_columns(fmt: str, columns: Iterable[str]) -> list[str]:
    have = set(columns)
    return [spec for spec in EXPECTED_COLUMNS[fmt] if not any(alt in have for alt in spec.split("|"))]


def _no_format_error(columns: Sequence[str], wanted: str | None = None) -> DatasetError:
    expected = {wanted: EXPECTED_COLUMNS[wanted]} if wanted else dict(EXPECTED_COLUMNS)
    wanted_text = "; ".join(f"{fmt}: {', '.join(cols)}" for fmt, cols in expected.items())
    found = sorted(columns)
    if wanted:
        message = f"the dataset does not look like '{wanted}': found columns {found}, expected {wanted_text}"
    else:
        message = f"cannot tell the dataset format: found columns {found}, expected one of {wanted_text}"
    return DatasetError(
        message,
        {"columns_found": sorted(columns), "columns_expected": expected},
        "Rename the columns to one of the supported formats, or set dataset_format explicitly.",
    )


def detect_format(rows: Sequence[Mapping[str, Any]], wanted: str = "auto") -> str:
    """Name the format of ``rows`` (or check that ``wanted`` fits them).

    Args:
        rows: A sample of rows (the first ~100 are looked at).
        wanted: ``"auto"`` or one of :data:`FORMATS`.

    Raises:
        DatasetError: No format matches, or ``wanted`` needs columns that are not there.
    """
    if wanted not in ("auto", *FORMATS):
        raise DatasetError(
            f"unknown dataset format {wanted!r}",
            {"dataset_format": str(wanted)},
            f"Use 'auto' or one of {', '.join(FORMATS)}.",
        )
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
        raise DatasetError("the dataset rows must be a list of objects", {"type": type(rows).__name__})
    columns = columns_of(rows)
    if not columns:
        raise DatasetError(
            "the dataset has no rows with columns (is it empty, or not a list of JSON objects?)",
            {"rows": len(rows)},
            "Give one JSON object per line (JSONL), a JSON list of objects, a CSV with a header, or parquet.",
        )
    if wanted != "auto":
        if _missing_columns(wanted, columns):
            raise _no_format_error(columns, wanted)
        return wanted
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        sample = _first_value(rows, "conversations")
        first = sample[0] if isinstance(sample, list) and sample else None
        if isinstance(first, Mapping) and "role" in first and "from" not in first:
            return "messages"
        return "sharegpt"
    for fmt in ("alpaca", "prompt_completion", "text"):
        if not _missing_columns(fmt, columns):
            return fmt
    raise _no_format_error(columns)


def output_columns(fmt: str) -> tuple[str, ...]:
    """The columns :func:`normalise_row` produces for ``fmt``."""
    if fmt in ("alpaca", "prompt_completion"):
        return ("prompt", "completion")
    if fmt in ("messages", "sharegpt"):
        return ("messages",)
    return ("text",)


# ------------------------------------------------------------------------------------- normalisation


def _text(value: Any, what: str, *, required: bool = True) -> str:
    """A field as text: strings as they are, numbers (CSV) as their decimal form."""
    if value is None:
        if required:
            raise RowProblem(f"{what} is missing")
        return ""
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, (int, float)):
        value = str(value)
    elif (
        isinstance(value, list)
        and all(isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value)
        and value
    ):
        value = "".join(p["text"] for p in value)  # multimodal-style content with text parts only
    if not isinstance(value, str):
        raise RowProblem(f"{what} must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RowProblem(f"{what} is empty")
    return value


def _message(item: Any, index: int) -> dict[str, str]:
    if not isinstance(item, Mapping):
        raise RowProblem(f"message {index} is not an object")
    role = item.get("role") if item.get("role") is not None else item.get("from")
    if not isinstance(role, str) or role.strip().lower() not in _ROLE_ALIASES:
        raise RowProblem(f"message {index} has an unknown role {role!r}")
    content = item.get("content") if "content" in item else item.get("value")
    text = _text(content, f"message {index} content", required=False)
    return {"role": _ROLE_ALIASES[role.strip().lower()], "content": text}


def _conversation(value: Any, what: str, *, need_assistant: bool) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowProblem(f"{what} must be a non-empty list of messages")
    messages = [_message(item, i) for i, item in enumerate(value)]
    if need_assistant and not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise RowProblem(f"{what} has no non-empty assistant message")
    return messages


def normalise_row(row: Any, fmt: str) -> dict[str, Any]:
    """Turn one row of format ``fmt`` into SFTTrainer's shape (see :func:`output_columns`).

    Raises:
        RowProblem: The row is malformed (callers skip and count it).
        DatasetError: ``fmt`` is not a known format.
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}", {"dataset_format": str(fmt)})
    if not isinstance(row, Mapping):
        raise RowProblem(f"row is a {type(row).__name__}, not an object")
    if fmt == "alpaca":
        instruction = _text(row.get("instruction"), "instruction")
        output_key = "response" if row.get("output") is None and "response" in row else "output"
        output = _text(row.get(output_key), output_key)
        input_key = "context" if row.get("input") is None and "context" in row else "input"
        extra = _text(row.get(input_key), input_key, required=False)
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        prompt = [{"role": "user", "content": user}]
        system = _text(row.get("system"), "system", required=False)
        if system.strip():
            prompt.insert(0, {"role": "system", "content": system})
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": output}]}
    if fmt == "prompt_completion":
        prompt_value, completion_value = row.get("prompt"), row.get("completion")
        if isinstance(prompt_value, list):
            prompt = _conversation(prompt_value, "prompt", need_assistant=False)
        else:
            prompt = [{"role": "user", "content": _text(prompt_value, "prompt")}]
        if isinstance(completion_value, list):
            completion = _conversation(completion_value, "completion", need_assistant=True)
        else:
            completion = [{"role": "assistant", "content": _text(completion_value, "completion")}]
        return {"prompt": prompt, "completion": completion}
    if fmt in ("messages", "sharegpt"):
        column = "messages" if fmt == "messages" else "conversations"
        if column not in row and fmt == "sharegpt" and "messages" in row:
            column = "messages"
        elif column not in row and fmt == "messages" and "conversations" in row:
            column = "conversations"
        return {"messages": _conversation(row.get(column), column, need_assistant=True)}
    return {"text": _text(row.get("text"), "text")}


def normalise_rows(rows: Sequence[Any], fmt: str, *, start: int = 1) -> NormalisedRows:
    """Normalise every row, skipping and counting malformed ones (problems name 1-based row numbers)."""
    result = NormalisedRows(rows=[])
    for i, row in enumerate(rows):
        try:
            result.rows.append(normalise_row(row, fmt))
        except RowProblem as exc:
            result.skipped += 1
            if len(result.problems) < _MAX_PROBLEMS:
                result.problems.append(f"row {i + start}: {exc}")
    return result


# ------------------------------------------------------------------------------------- column mapping


def check_column_mapping(columns: Sequence[str], mapping: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a ``{existing column: new name}`` renaming against the dataset's ``columns``.

    Raises:
        DatasetError: A source column is missing, a name is not text, or a new name collides with a column
            that is kept.
    """
    if not mapping:
        return {}
    clean: dict[str, str] = {}
    for source, target in mapping.items():
        if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
            raise DatasetError(
                "a column mapping maps column names (text) to column names (text)",
                {"column_mapping": {str(k): str(v) for k, v in mapping.items()}},
                "Give the mapping as {'your_column': 'instruction', ...}.",
            )
        clean[source] = target
    have = set(columns)
    missing = sorted(s for s in clean if s not in have)
    if missing:
        raise DatasetError(
            f"the column mapping names columns the dataset does not have: {missing} (found {sorted(have)})",
            {"columns_found": sorted(have), "columns_missing": missing},
            "Map columns that exist in the dataset (names are case-sensitive).",
        )
    kept = have - set(clean)
    targets = list(clean.values())
    clash = sorted({t for t in targets if t in kept} | {t for t in targets if targets.count(t) > 1})
    if clash:
        raise DatasetError(
            f"the column mapping would create duplicate columns {clash} (found {sorted(have)})",
            {"columns_found": sorted(have), "columns_clashing": clash},
            "Rename or drop the existing column first, or map to a different name.",
        )
    return clean


def rename_row(row: Any, mapping: Mapping[str, str]) -> Any:
    """``row`` with its columns renamed by ``mapping`` (rows that are not objects pass through)."""
    if not mapping or not isinstance(row, Mapping):
        return row
    return {mapping.get(str(k), str(k)): v for k, v in row.items()}
