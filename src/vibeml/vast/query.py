"""The Vast.ai offer-search query language, encoded exactly as the official ``vastai`` client does.

A query is space-separated ``field op value`` terms::

    gpu_name=RTX_4090 num_gpus>=2 reliability>0.99 gpu_ram>=24 cuda_vers>=12.1 geolocation in [US,CA]

* operators: ``= == != > >= < <=`` and the words ``eq neq gt gte lt lte in notin`` (also ``nin``,
  ``noteq``, ``not eq``, ``not in``); a word operator needs a space on both sides;
* values: bare, ``"quoted"`` or ``[a,b]`` lists; ``_`` becomes a space (``RTX_4090``); ``true``/``false``
  become booleans, ``null``/``None`` becomes null; numbers stay strings (the server coerces them);
* ``gpu_ram``, ``cpu_ram`` and ``gpu_total_ram`` are given in GB and sent in MB (×1000, as floats);
  ``duration`` is given in days and sent in seconds;
* aliases: ``cuda_vers`` → ``cuda_max_good``, ``dph`` → ``dph_total``, ``dlperf_usd`` →
  ``dlperf_per_dphtotal`` (and ``flops_usd``, ``display_active``);
* ``field=any`` (or ``?``/``*``) removes every condition on the field, default filters included;
* several conditions on one field merge into one dict (``num_gpus>=2 num_gpus<=4``).

Anything that cannot be parsed raises :class:`VastQueryError` naming the position and what was expected.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from vibeml.exceptions import ValidationError

__all__ = [
    "DEFAULT_FILTERS",
    "OFFER_ALIASES",
    "OFFER_FIELDS",
    "OFFER_MULTIPLIERS",
    "OFFER_TYPES",
    "VastQueryError",
    "build_search_query",
    "parse_order",
    "parse_query",
    "render_query",
]

logger = logging.getLogger(__name__)

OFFER_FIELDS: frozenset[str] = frozenset(
    {
        "bw_nvlink",
        "compute_cap",
        "cpu_arch",
        "cpu_cores",
        "cpu_cores_effective",
        "cpu_ghz",
        "cpu_ram",
        "cuda_max_good",
        "datacenter",
        "direct_port_count",
        "driver_version",
        "disk_bw",
        "disk_space",
        "dlperf",
        "dlperf_per_dphtotal",
        "dph_total",
        "duration",
        "external",
        "flops_per_dphtotal",
        "gpu_arch",
        "gpu_display_active",
        "gpu_frac",
        "gpu_mem_bw",
        "gpu_name",
        "gpu_ram",
        "gpu_total_ram",
        "gpu_max_power",
        "gpu_max_temp",
        "has_avx",
        "host_id",
        "hosting_type",
        "id",
        "inet_down",
        "inet_down_cost",
        "inet_up",
        "inet_up_cost",
        "machine_id",
        "min_bid",
        "mobo_name",
        "num_gpus",
        "pci_gen",
        "pcie_bw",
        "reliability",
        "reliability2",
        "rentable",
        "rented",
        "score",
        "static_ip",
        "storage_cost",
        "total_flops",
        "ubuntu_version",
        "verification",
        "verified",
        "vms_enabled",
        "geolocation",
        "cluster_id",
    }
)

OFFER_ALIASES: Mapping[str, str] = {
    "cuda_vers": "cuda_max_good",
    "display_active": "gpu_display_active",
    "dlperf_usd": "dlperf_per_dphtotal",
    "dph": "dph_total",
    "flops_usd": "flops_per_dphtotal",
}

OFFER_MULTIPLIERS: Mapping[str, float] = {
    "cpu_ram": 1000,
    "gpu_ram": 1000,
    "gpu_total_ram": 1000,
    "duration": 24.0 * 60.0 * 60.0,
}

#: Filters every search carries unless ``no_default`` (a ``field=any`` term removes one of them).
DEFAULT_FILTERS: Mapping[str, Mapping[str, Any]] = {
    "verified": {"eq": True},
    "external": {"eq": False},
    "rentable": {"eq": True},
}

#: Accepted ``type`` values and what goes on the wire.
OFFER_TYPES: Mapping[str, str] = {
    "on-demand": "on-demand",
    "bid": "bid",
    "interruptible": "bid",
    "reserved": "reserved",
}

_OPS: Mapping[str, str] = {
    ">=": "gte",
    ">": "gt",
    "gt": "gt",
    "gte": "gte",
    "<=": "lte",
    "<": "lt",
    "lt": "lt",
    "lte": "lte",
    "!=": "neq",
    "==": "eq",
    "=": "eq",
    "eq": "eq",
    "neq": "neq",
    "noteq": "neq",
    "not eq": "neq",
    "notin": "notin",
    "not in": "notin",
    "nin": "notin",
    "in": "in",
}

_SYMBOLS = re.compile(r" *([=><!]+)")
# Longest alternatives first so "gte" is not read as "gt" + "e".
_WORDS = re.compile(r" +(gte|gt|lte|lt|neq|noteq|not ?eq|notin|not ?in|nin|eq|in) +")
_FIELD = re.compile(r"[A-Za-z0-9_]+")
_WILDCARDS = frozenset({"?", "*", "any"})


class VastQueryError(ValidationError):
    """A search query or order string that cannot be parsed.

    Args:
        message: What is wrong and where.
        query: The query text (kept in ``context``).
        position: 0-based offset of the problem in the query, when known.
    """

    default_suggestion = (
        "Write terms as 'field op value' separated by spaces, e.g. "
        "'gpu_name=RTX_4090 num_gpus>=2 reliability>0.99'; quote values with spaces or use '_'."
    )

    def __init__(self, message: str, query: str | None = None, position: int | None = None) -> None:
        context: dict[str, Any] = {}
        if query is not None:
            context["query"] = query
        if position is not None:
            context["position"] = position
        super().__init__(message, context)
        self.query = query
        self.position = position


def _numeric_version(text: str) -> int | None:
    """``535.86.05`` → ``535086005`` (how the server stores driver versions)."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int("".join(p.zfill(3) for p in parts))


def _scan(query: str) -> list[tuple[str, str, str, str, int]]:
    """Split ``query`` into ``(field, op, kind, raw_value, position)`` terms; kind is bare/quoted/list."""
    terms: list[tuple[str, str, str, str, int]] = []
    pos, n = 0, len(query)
    while True:
        while pos < n and query[pos] == " ":
            pos += 1
        if pos >= n:
            return terms
        start = pos
        m = _FIELD.match(query, pos)
        if m is None:
            raise VastQueryError(
                f"Unexpected {query[pos]!r} at position {pos}: expected a field name "
                "(letters, digits, '_'). Did you forget to quote your query?",
                query,
                pos,
            )
        field, pos = m.group(), m.end()
        sym = _SYMBOLS.match(query, pos)
        word = None if sym else _WORDS.match(query, pos)
        if sym is not None:
            op, pos = sym.group(1), sym.end()
        elif word is not None:
            op, pos = word.group(1), word.end()
        else:
            raise VastQueryError(
                f"Field {field!r} at position {start} has no operator: use one of = != > >= < <= "
                "or eq neq gt gte lt lte in notin.",
                query,
                pos,
            )
        if op not in _OPS:
            raise VastQueryError(
                f"Unknown operator {op!r} after {field!r} at position {pos - len(op)}.", query, pos - len(op)
            )
        while pos < n and query[pos] == " ":
            pos += 1
        if pos >= n:
            raise VastQueryError(f"{field}{op}: the value is missing.", query, pos)
        opener = query[pos]
        if opener in '["':
            closer = "]" if opener == "[" else '"'
            end = query.find(closer, pos + 1)
            if end < 0:
                raise VastQueryError(f"Unclosed {opener!r} opened at position {pos}.", query, pos)
            raw, kind, after = query[pos + 1 : end], ("list" if opener == "[" else "quoted"), end + 1
        else:
            end = query.find(" ", pos)
            end = n if end < 0 else end
            raw, kind, after = query[pos:end], "bare", end
        if after < n and query[after] != " ":
            raise VastQueryError(
                f"Unexpected text {query[after : after + 10]!r} at position {after} after the value of "
                f"{field!r}: separate terms with spaces.",
                query,
                after,
            )
        terms.append((field, _OPS[op], kind, raw, start))
        pos = after


def _convert_scalar(text: str) -> Any:
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "None"):
        return None
    return text


def _multiply(field: str, text: str, factor: float, query: str, position: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise VastQueryError(f"{field} needs a number, got {text!r}.", query, position) from None
    if not math.isfinite(value):
        raise VastQueryError(f"{field} needs a finite number, got {text!r}.", query, position)
    return value * factor


def parse_query(
    query: str | Iterable[str] | None,
    res: dict[str, Any] | None = None,
    *,
    fields: frozenset[str] = OFFER_FIELDS,
    aliases: Mapping[str, str] = OFFER_ALIASES,
    multipliers: Mapping[str, float] = OFFER_MULTIPLIERS,
) -> dict[str, Any]:
    """Parse a query string into the filter dict the server expects, merged into ``res``.

    Args:
        query: The query text (a list of words is joined with spaces, like the CLI's nargs).
        res: Filters to start from (e.g. the defaults); updated in place and returned.
        fields: Known fields; others are sent anyway with a logged warning.
        aliases: Short names mapped to server field names.
        multipliers: Unit conversions applied to numeric values.

    Returns:
        ``{field: {op: value, ...}, ...}``.

    Raises:
        VastQueryError: For any text that is not a well-formed sequence of terms.
    """
    res = {} if res is None else res
    if query is None:
        return res
    if not isinstance(query, str):
        query = " ".join(query)
    text = query.strip()
    for field, op, kind, raw, position in _scan(text):
        if field in aliases:
            old, field = field, aliases[field]
            if old in res:
                res[field] = res.pop(old)
        if field not in fields:
            logger.warning("Unrecognised search field %r; sending it anyway.", field)
        value: Any
        if kind == "quoted":
            stripped = raw
        else:
            stripped = raw.strip(",[]")
        if op in ("in", "notin"):
            items = [x.strip() for x in stripped.split(",") if x.strip()]
            if not items:
                raise VastQueryError(f"{field} {op}: the list is empty.", text, position)
            items = [x.replace("_", " ").strip('"') for x in items]
            if field in multipliers:
                value = [_multiply(field, x, multipliers[field], text, position) for x in items]
            else:
                value = items
        else:
            if not stripped:
                raise VastQueryError(f"{field}: the value is blank.", text, position)
            if kind != "quoted" and stripped in _WILDCARDS:
                if op != "eq":
                    raise VastQueryError(
                        f"{field}: the wildcard {stripped!r} only makes sense with '='.", text, position
                    )
                res.pop(field, None)
                continue
            if field == "driver_version" and "." in stripped:
                version = _numeric_version(stripped)
                if version is None:
                    raise VastQueryError(f"driver_version needs MAJOR.MINOR.PATCH, got {stripped!r}.", text, position)
                value = version
            else:
                stripped = stripped.replace("_", " ").strip('"')
                if field in multipliers:
                    value = _multiply(field, stripped, multipliers[field], text, position)
                else:
                    value = _convert_scalar(stripped)
        current = res.get(field)
        if not isinstance(current, dict):
            current = {}
            res[field] = current
        current[op] = value
    return res


def parse_order(order: str | None, aliases: Mapping[str, str] = OFFER_ALIASES) -> list[list[str]]:
    """Parse ``"score-"``, ``"dph_total"``, ``"num_gpus-,dph+"`` into ``[["score", "desc"], ...]``.

    A trailing ``-`` sorts descending, ``+`` (or nothing) ascending; aliases apply.

    Raises:
        VastQueryError: For a field name that is not letters, digits and ``_``.
    """
    result: list[list[str]] = []
    for part in (order or "").split(","):
        name = part.strip()
        if not name:
            continue
        direction = "asc"
        field = name
        if name.strip("-") != name:
            direction, field = "desc", name.strip("-")
        if field.strip("+") != field:
            direction, field = "asc", field.strip("+")
        if not _FIELD.fullmatch(field):
            raise VastQueryError(f"Cannot sort by {part.strip()!r}: expected 'field', 'field-' or 'field+'.")
        result.append([aliases.get(field, field), direction])
    return result


def build_search_query(
    query: str | Iterable[str] | None = "",
    type: str = "on-demand",
    order: str = "score-",
    limit: int | None = None,
    storage: float = 5.0,
    no_default: bool = False,
) -> dict[str, Any]:
    """Build the body of ``POST /api/v0/bundles/`` exactly as the official client does.

    Args:
        query: Query text (see the module docstring).
        type: ``on-demand``, ``bid`` (alias ``interruptible``) or ``reserved``.
        order: Sort spec, e.g. ``"score-"`` or ``"num_gpus-,dph+"``.
        limit: Maximum offers to return.
        storage: GB of disk to price into ``dph_total`` (``allocated_storage``).
        no_default: Leave out the default ``verified/external/rentable`` filters.

    Raises:
        VastQueryError: Unparseable query or order, unknown type, bad limit or storage.
    """
    wire_type = OFFER_TYPES.get(type)
    if wire_type is None:
        raise VastQueryError(f"Unknown offer type {type!r}: use on-demand, bid (interruptible) or reserved.")
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise VastQueryError(f"limit must be a positive integer, got {limit!r}.")
    try:
        storage_gb = float(storage)
    except (TypeError, ValueError):
        raise VastQueryError(f"storage must be a number of GB, got {storage!r}.") from None
    if not math.isfinite(storage_gb) or storage_gb < 0:
        raise VastQueryError(f"storage must be a non-negative number of GB, got {storage!r}.")
    base: dict[str, Any] = {} if no_default else {k: dict(v) for k, v in DEFAULT_FILTERS.items()}
    body = parse_query(query, base)
    body["order"] = parse_order(order)
    body["type"] = wire_type
    if limit is not None:
        body["limit"] = int(limit)
    body["allocated_storage"] = storage_gb
    return body


_UNWRITABLE = re.compile(r'[,"\[\]_\t\r\n\f\v]|^[=<>! ]| $|  ')
_KEYWORDS = frozenset({"true", "True", "false", "False", "null", "None"}) | _WILDCARDS


def _render_value(field: str, value: Any, multipliers: Mapping[str, float]) -> str:
    if field in multipliers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value) / multipliers[field])
    if field == "driver_version" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value // 1_000_000}.{value // 1000 % 1000:03d}.{value % 1000:03d}"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    text = str(value)
    if not text or _UNWRITABLE.search(text) or text in _KEYWORDS or not text.isprintable():
        raise ValueError(f"{field}: {text!r} cannot be written in the query language")
    return text.replace(" ", "_")


def render_query(filters: Mapping[str, Mapping[str, Any]], multipliers: Mapping[str, float] = OFFER_MULTIPLIERS) -> str:
    """Write a filter dict back as query text, so that ``parse_query(render_query(f)) == f``.

    Useful for building queries in code and for showing a search to a user.

    Raises:
        ValueError: For values the language cannot express (underscores, quotes, ``]``, keywords).
    """
    symbols = {"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    terms: list[str] = []
    for field, conditions in filters.items():
        if not _FIELD.fullmatch(field):
            raise ValueError(f"{field!r} is not a valid field name")
        for op, value in conditions.items():
            if op in ("in", "notin"):
                items = [_render_value(field, v, multipliers) for v in value]
                if not items:
                    raise ValueError(f"{field}: list {value!r} cannot be written in the query language")
                terms.append(f"{field} {op} [{','.join(items)}]")
            elif op in symbols:
                rendered = _render_value(field, value, multipliers)
                terms.append(f"{field}{symbols[op]}{rendered}")
            else:
                raise ValueError(f"unknown operator {op!r}")
    return " ".join(terms)
