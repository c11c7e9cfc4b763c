"""Charts as server-rendered SVG: no script, no chart library, nothing the
console's Content-Security-Policy has to allow. This module computes the
geometry; templates/console/_charts.html draws it, with the figures as a
table beside each chart for screen readers and for copying.

Colours come from CSS classes (`series-N`), so the SVG carries no style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

SERIES = 5  # series-0 .. series-4 in console.css; more series share the last


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    series: int  # its colour class
    name: str
    value: int


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class StackedBars:
    """Horizontal bars, one per row, stacked by series."""

    width: int
    height: int
    label_width: int
    bar_height: int
    bars: tuple[Bar, ...]
    series: tuple[str, ...]
    maximum: int


def stacked_bars(
    rows: Sequence[tuple[str, dict[str, int]]],
    series: Sequence[str],
    width: int = 640,
    bar_height: int = 18,
    label_width: int = 120,
) -> StackedBars:
    """`rows`: (label, {series name: value}) in the order drawn."""
    gap = 6
    totals = [sum(values.values()) for _, values in rows]
    maximum = max(totals, default=0) or 1
    plot = width - label_width - 60  # room for the total after each bar
    bars = []
    for index, ((label, values), total) in enumerate(zip(rows, totals, strict=True)):
        x = float(label_width)
        segments = []
        for number, name in enumerate(series):
            value = values.get(name, 0)
            if value:
                length = plot * value / maximum
                segments.append(Segment(x, length, min(number, SERIES - 1), name, value))
                x += length
        bars.append(Bar(label, index * (bar_height + gap), total, tuple(segments)))
    height = max(len(bars) * (bar_height + gap), bar_height)
    return StackedBars(width, height, label_width, bar_height, tuple(bars), tuple(series), maximum)


@dataclass(frozen=True)
class Line:
    """A line over days: its path, the points, and the axis labels."""

    width: int
    height: int
    path: str
    points: tuple[tuple[float, float, date, int], ...]
    maximum: int
    ticks: tuple[tuple[float, str], ...] = field(default_factory=tuple)


def line_over_days(values: Sequence[tuple[date, int]], width: int = 640, height: int = 200) -> Line:
    """A line of (day, value) in day order; x by day, y from 0 to the maximum."""
    left, right, top, bottom = 48, 12, 10, 28
    if not values:
        return Line(width, height, "", (), 0)
    first, last = values[0][0], values[-1][0]
    span = max((last - first).days, 1)
    maximum = max(v for _, v in values) or 1
    plot_w, plot_h = width - left - right, height - top - bottom
    points = tuple(
        (
            round(left + plot_w * (day - first).days / span, 1),
            round(top + plot_h * (1 - value / maximum), 1),
            day,
            value,
        )
        for day, value in values
    )
    path = "M" + " L".join(f"{x},{y}" for x, y, _, _ in points)
    step = max(len(points) // 6, 1)
    ticks = tuple((x, day.strftime("%m-%d")) for x, _, day, _ in points[::step])
    return Line(width, height, path, points, maximum, ticks)
