"""Readable Rich tables for ``VastAI(raw=False)``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["show"]

_OFFER_COLUMNS = (
    ("id", "ID"),
    ("num_gpus", "N"),
    ("gpu_name", "GPU"),
    ("gpu_ram", "VRAM GB"),
    ("dph_total", "$/h"),
    ("min_bid", "min bid"),
    ("reliability", "rel."),
    ("cuda_max_good", "CUDA"),
    ("dlperf", "DLPerf"),
    ("geolocation", "location"),
)
_INSTANCE_COLUMNS = (
    ("id", "ID"),
    ("label", "label"),
    ("actual_status", "status"),
    ("num_gpus", "N"),
    ("gpu_name", "GPU"),
    ("dph_total", "$/h"),
    ("is_bid", "bid"),
    ("ssh_host", "ssh host"),
    ("ssh_port", "port"),
    ("status_msg", "message"),
)
_WRAPPING = frozenset({"gpu_name", "geolocation", "label", "status_msg", "ssh_host"})


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "gpu_ram" and isinstance(value, (int, float)):
        return f"{value / 1000:.0f}"
    if key in ("dph_total", "min_bid") and isinstance(value, (int, float)):
        return f"{value:.4f}"
    if key == "reliability" and isinstance(value, (int, float)):
        return f"{value:.3f}"
    return str(value)


def show(console: Console, data: Any, kind: str, mask: Callable[[str], str]) -> None:
    """Print ``data`` (list of rows, one dict or text) as a table; every cell passes through ``mask``."""
    if isinstance(data, str):
        console.print(mask(data), markup=False, highlight=False)
        return
    if isinstance(data, list):
        columns: Sequence[tuple[str, str]]
        if kind == "offers":
            columns = _OFFER_COLUMNS
        elif kind == "instances":
            columns = _INSTANCE_COLUMNS
        else:
            keys = list(dict.fromkeys(k for row in data[:50] if isinstance(row, Mapping) for k in row))
            columns = [(k, k) for k in keys[:8]]
        table = Table(show_lines=False)
        for key, title in columns:
            table.add_column(title, overflow="fold", no_wrap=key not in _WRAPPING)
        for row in data:
            if isinstance(row, Mapping):
                table.add_row(*(Text(mask(_cell(k, row.get(k)))) for k, _ in columns))
        console.print(table)
        return
    if isinstance(data, Mapping):
        table = Table("field", "value", show_header=False)
        for k, v in data.items():
            table.add_row(Text(str(k)), Text(mask(_cell(str(k), v))))
        console.print(table)
