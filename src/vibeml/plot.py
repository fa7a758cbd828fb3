"""`vibeml plot JOB`: a PNG of a job's curves (:mod:`vibeml.curves`) drawn with :mod:`vibeml.png`.

Panels, top to bottom: train loss and eval loss over steps; the learning rate over steps; and, for a
job on a paid backend, the accrued cost over minutes since the launch against the budget cap (dashed).
A panel without points yet says so instead of drawing an empty frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vibeml.curves import Curves
from vibeml.png import Canvas, Color, text_width
from vibeml.safe_paths import atomic_write_bytes

if TYPE_CHECKING:
    from vibeml.client import VibeML

__all__ = ["PLOT_FILENAME", "render_plot", "write_job_plot"]

#: Where ``vibeml plot`` writes by default: the job's folder.
PLOT_FILENAME = "curves.png"
WIDTH = 960
PANEL_HEIGHT = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 100, 30, 44, 44
_BLUE: Color = (31, 119, 180)
_ORANGE: Color = (230, 110, 20)
_GREEN: Color = (44, 160, 44)
_RED: Color = (214, 39, 40)
_INK: Color = (40, 40, 40)
_GRID: Color = (225, 225, 225)
_FRAME: Color = (150, 150, 150)

Series = tuple[str, Color, Sequence[tuple[float, float]], bool]  # label, colour, points, mark each point


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.1e}"


def _range(values: Sequence[float], floor: float | None = None) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if floor is not None:
        lo = min(lo, floor)
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad if floor is None else lo, hi + pad
    pad = (hi - lo) * 0.05
    return (lo - pad if floor is None else lo), hi + pad


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude)
    first = math.ceil(lo / step) * step
    out: list[float] = []
    value = first
    while value <= hi + step * 1e-9 and len(out) < 50:
        out.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return out


def _panel(
    canvas: Canvas,
    top: int,
    title: str,
    x_label: str,
    series: Sequence[Series],
    cap: float | None = None,
) -> None:
    left, right = _LEFT, WIDTH - _RIGHT
    y0, y1 = top + _TOP, top + PANEL_HEIGHT - _BOTTOM  # plot area, top and bottom
    canvas.text(left, top + 14, title, _INK, scale=3)
    points = [p for _, _, pts, _ in series for p in pts]
    if not points:
        canvas.line(left, y1, right, y1, _FRAME)
        canvas.text(left + 20, (y0 + y1) // 2, "no data yet", _FRAME, scale=3)
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if cap is not None:
        ys.append(cap)
    x_lo, x_hi = _range(xs, floor=0.0)
    y_lo, y_hi = _range(ys, floor=0.0 if cap is not None else None)

    def px(x: float) -> int:
        return round(left + (x - x_lo) / (x_hi - x_lo) * (right - left))

    def py(y: float) -> int:
        return round(y1 - (y - y_lo) / (y_hi - y_lo) * (y1 - y0))

    for t in _ticks(y_lo, y_hi):
        canvas.line(left, py(t), right, py(t), _GRID)
        label = _fmt(t)
        canvas.text(left - 8 - text_width(label), py(t) - 5, label, _INK)
    for t in _ticks(x_lo, x_hi):
        canvas.line(px(t), y0, px(t), y1, _GRID)
        label = _fmt(t)
        canvas.text(px(t) - text_width(label) // 2, y1 + 8, label, _INK)
    canvas.text(right - text_width(x_label), y1 + 24, x_label, _FRAME)
    for a, b, c, d in ((left, y0, right, y0), (left, y1, right, y1), (left, y0, left, y1), (right, y0, right, y1)):
        canvas.line(a, b, c, d, _FRAME)
    if cap is not None:
        canvas.line(left, py(cap), right, py(cap), _RED, width=2, dash=8)
        label = f"cap ${_fmt(cap)}"
        canvas.text(right - text_width(label) - 6, py(cap) + 6, label, _RED)
    legend_x = right
    for label, color, pts, mark in reversed(series):
        if not pts:
            continue
        legend_x -= text_width(label) + 34
        canvas.rect(legend_x, top + 20, legend_x + 18, top + 23, color)
        canvas.text(legend_x + 24, top + 17, label, color)
        prev: tuple[int, int] | None = None
        for x, y in pts:
            here = (px(x), py(y))
            if prev is not None:
                canvas.line(prev[0], prev[1], here[0], here[1], color, width=2)
            if mark or len(pts) == 1:
                canvas.rect(here[0] - 3, here[1] - 3, here[0] + 3, here[1] + 3, color)
            prev = here


def render_plot(curves: Curves, title: str) -> bytes:
    """The PNG of ``curves`` under ``title``."""
    panels = 3 if curves.cost else 2
    canvas = Canvas(WIDTH, 40 + panels * PANEL_HEIGHT)
    canvas.text(_LEFT, 12, title, _INK, scale=3)
    top = 40
    _panel(
        canvas,
        top,
        "loss",
        "step",
        [("train loss", _BLUE, curves.train_loss, False), ("eval loss", _ORANGE, curves.eval_loss, True)],
    )
    top += PANEL_HEIGHT
    _panel(canvas, top, "learning rate", "step", [("learning rate", _GREEN, curves.learning_rate, False)])
    if curves.cost:
        top += PANEL_HEIGHT
        _panel(canvas, top, "cost (usd)", "minutes", [("cost", _BLUE, curves.cost, False)], cap=curves.cap)
    return canvas.png()


def write_job_plot(service: VibeML, job_id: str, path: str | Path | None = None) -> Path:
    """Write a job's curves as a PNG (default: ``curves.png`` in the job's folder); returns the path."""
    from vibeml.curves import job_curves

    record = service.get_status(job_id)
    job_dir = service.job_dir(record.job_id)
    curves = job_curves(record, job_dir, service.store.events(record.job_id))
    target = Path(path).expanduser() if path is not None else job_dir / PLOT_FILENAME
    title = f"{record.job_id}  {record.status.value}  {record.request.workflow} on {record.backend}"
    atomic_write_bytes(target, render_plot(curves, title))
    return target
