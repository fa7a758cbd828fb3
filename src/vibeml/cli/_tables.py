"""Rich tables that read well on a narrow terminal: one spec per column, one layout chosen by the width.

Each command describes its columns once (:class:`Col`) and hands over its rows; :func:`fit_table` picks
the layout from the console's width (Rich honours ``COLUMNS``):

* **wide** (``width >= wide_at``, 120 by default): every column but the ``narrow_only`` ones, the full
  headers and the wide cell values: the layout the commands always had.
* **compact** (narrower): the short headers, the narrow cell values (:class:`Alt`), a lighter box, the
  ``wide_only`` columns left out (what they say is merged into another column's narrow value), then the
  columns with a ``drop`` rank left out, highest rank first, until the table's natural width fits.

Whatever the layout, a column that is neither ``wrap`` nor ``flex`` never wraps and never shrinks below its
widest cell, and nothing but a ``flex`` column's values is ever cut to ``…`` (a column squeezed on an
absurdly narrow terminal folds instead).
A ``wrap`` column (a list of clouds) takes what width is left and wraps its words; a ``flex`` one (a
long model name) is the one cut short when even the compact layout cannot give it its width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from rich.box import Box
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "WIDE",
    "Alt",
    "Col",
    "fit_table",
    "is_wide",
    "pack",
    "short_count",
    "short_loss",
    "short_model",
    "short_money",
]

#: From this terminal width on, the wide layout (every column, full headers).
WIDE = 120

#: The least width a ``wrap`` column is given when the table is fitted (its words wrap within it).
WRAP_MIN = 14

Justify = Literal["left", "center", "right"]


class Alt(NamedTuple):
    """A cell with a shorter form for the compact layout."""

    wide: str
    narrow: str


@dataclass(frozen=True)
class Col:
    """One column.

    Attributes:
        header: The header of the wide layout.
        short: The header of the compact layout (default: ``header``).
        justify: left, center or right.
        drop: 0 = always shown; otherwise the compact layout leaves it out when the table is too wide,
            the highest rank first.
        wide_only: Only in the wide layout (its content is merged into another column when narrow).
        narrow_only: Only in the compact layout (the merged column).
        wrap: May wrap its words to take what width is left (a list; never a key value).
        flex: May shrink, its values cut with ``…``, when even the layout's last columns leave it too
            little room (a long model name; never a key value).
        style: A Rich style for the whole column.
    """

    header: str
    short: str | None = None
    justify: Justify = "left"
    drop: int = 0
    wide_only: bool = False
    narrow_only: bool = False
    wrap: bool = False
    flex: bool = False
    style: str | None = None


def is_wide(console: Console, wide_at: int = WIDE) -> bool:
    """Whether ``console`` is wide enough for the wide layout."""
    return console.width >= wide_at


def fit_table(
    columns: Sequence[Col],
    rows: Iterable[Sequence[Any]],
    console: Console,
    *,
    title: str | None = None,
    wide_at: int = WIDE,
    wide_box: Box | None = None,
    narrow_box: Box | None = None,
    **table_options: Any,
) -> Table:
    """A table of ``rows`` (one cell per column of ``columns``; a cell may be an :class:`Alt`) laid out
    for ``console``'s width (see the module's docstring). ``table_options`` go to ``rich.table.Table``."""
    from rich import box

    cells = [list(row) for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells for {len(columns)} columns")
    wide = is_wide(console, wide_at)
    shown = [i for i, c in enumerate(columns) if not (c.narrow_only if wide else c.wide_only)]
    chosen_box = (wide_box or box.HEAVY_HEAD) if wide else (narrow_box or box.SIMPLE_HEAD)

    def build(keep: list[int], measuring: bool = False) -> Table:
        return _build(columns, cells, keep, wide, chosen_box, title, table_options, measuring)

    if not wide:
        droppable = sorted((i for i in shown if columns[i].drop), key=lambda i: (-columns[i].drop, -i))
        while droppable and _natural_width(build(shown, measuring=True), console) > console.width:
            shown.remove(droppable.pop(0))
    return build(shown)


def _build(
    columns: Sequence[Col],
    cells: list[list[Any]],
    keep: list[int],
    wide: bool,
    chosen_box: Box,
    title: str | None,
    options: dict[str, Any],
    measuring: bool,
) -> Table:
    from rich.table import Table

    if not wide:  # no outer edges and one space of padding between columns: the width goes to the cells
        options = {"show_edge": False, "pad_edge": False, "collapse_padding": True, **options}
        if title and not measuring:  # a title wider than its compact table would wrap: widen the table instead
            from rich.text import Text

            options.setdefault("min_width", Text.from_markup(title).cell_len)
    table = Table(title=title, box=chosen_box, **options)
    for i in keep:
        col = columns[i]
        header = col.header if wide else (col.short or col.header)
        width_cap = max(len(header), WRAP_MIN) if (col.wrap and measuring) else None
        table.add_column(
            header,
            justify=col.justify,
            style=col.style,
            no_wrap=not (col.wrap or col.flex),
            overflow="ellipsis" if col.flex else "fold",
            max_width=width_cap,
            min_width=max(len(word) for word in header.split()) if header.strip() else None,
        )
    for row in cells:
        table.add_row(*(_cell(row[i], wide) for i in keep))
    return table


def _cell(value: Any, wide: bool) -> Any:
    if isinstance(value, Alt):
        return value.wide if wide else value.narrow
    return value


def _natural_width(table: Table, console: Console) -> int:
    """The width ``table`` takes when nothing constrains it."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(10_000), table).maximum


def pack(parts: Sequence[str], width: int, sep: str = " · ") -> list[str]:
    """``parts`` (Rich markup) joined by ``sep`` into as few lines of at most ``width`` cells as they go:
    a summary line that breaks between its parts on a narrow terminal, not in the middle of one."""
    from rich.text import Text

    lines: list[str] = []
    for part in parts:
        if lines and Text.from_markup(lines[-1] + sep + part).cell_len <= width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return lines


# ------------------------------------------------------------------------------- short cell values


def short_money(value: float | None) -> str:
    """Dollars for a narrow column: ``$0.18``, ``$1,204``, ``$0.004`` below a cent, ``$0`` for nothing."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    if abs(value) < 0.01:
        return f"${value:.3f}"
    return f"${value:.2f}"


def short_loss(value: float | None) -> str:
    """A loss for a narrow column: three decimals (``0.812``)."""
    return "-" if value is None else f"{value:.3f}"


def short_count(value: float) -> str:
    """A count for a narrow column: ``950``, ``1.5k``, ``12k``, ``3.2M``."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return f"{scaled:.1f}{suffix}" if abs(scaled) < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def short_model(model: str, limit: int = 24) -> str:
    """A model name in at most ``limit`` characters: whole when it fits, else without its organisation
    (``Qwen/Qwen2.5-7B-Instruct`` → ``Qwen2.5-7B-Instruct``), else its tail after ``…``."""
    if len(model) <= limit:
        return model
    name = model.rstrip("/").rsplit("/", 1)[-1]
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]
