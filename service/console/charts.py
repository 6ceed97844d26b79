"""Charts for the console, drawn on the server as plain SVG (templates/console/_charts.html).

This module only does the geometry: it turns figures into bars, polylines,
axis ticks and a legend, in a fixed coordinate box that the SVG's viewBox
scales to any width.  No JavaScript and no chart library: a chart is a picture
of a table that the page always prints beside it, and the table is what a
screen reader reads (the SVG itself is ``role="img"`` with a title and a
description that says what it shows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

WIDTH = 640
HEIGHT = 240
# Room for the y-axis figures on the left and the x-axis labels below.
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36
# Colours with at least 3:1 contrast on white (WCAG 1.4.11); each line also has its own dash
# pattern, so no series is told apart by colour alone.
COLOURS = ("#1d70b8", "#d4351c", "#00703c", "#4c2c92", "#d53880", "#505a5f", "#912b88", "#0b0c0c")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 4", "10 4", "4 2 1 2", "3 3")


class Tick(msgspec.Struct, frozen=True):
    """A labelled position on an axis."""

    at: float
    label: str


class Bar(msgspec.Struct, frozen=True):
    """One bar: its box and the figure it stands for."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


class Line(msgspec.Struct, frozen=True):
    """One series as a polyline, with its colour, dash pattern and legend position."""

    name: str
    points: str
    colour: str
    dash: str
    legend_y: float


class Chart(msgspec.Struct, frozen=True, kw_only=True):
    """What the chart template draws: either bars or lines, over shared axes."""

    id: str
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: float
    plot_height: float
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    bars: list[Bar] = msgspec.field(default_factory=list)
    lines: list[Line] = msgspec.field(default_factory=list)


def bar_chart(chart_id: str, title: str, description: str, labels: Sequence[str], values: Sequence[int]) -> Chart:
    """Vertical bars, one per label (say, one per day), on a y axis from zero."""
    plot_width, plot_height = _plot_size()
    top_value = nice_ceiling(max(values, default=0))
    slot = plot_width / max(len(values), 1)
    bars = [
        Bar(x=round(LEFT + i * slot + slot * 0.15, 2), y=round(TOP + plot_height - _scaled(v, top_value), 2),
            width=round(slot * 0.7, 2), height=round(_scaled(v, top_value), 2), label=label, value=v)
        for i, (label, v) in enumerate(zip(labels, values, strict=True))
    ]
    return Chart(id=chart_id, title=title, description=description, plot_width=plot_width,
                 plot_height=plot_height, y_ticks=_y_ticks(top_value), x_ticks=_x_ticks(labels, slot, centred=True),
                 bars=bars)


def line_chart(chart_id: str, title: str, description: str, labels: Sequence[str],
               series: Sequence[tuple[str, Sequence[int]]]) -> Chart:
    """One line per named series over the same labels (say, months), on a y axis from zero."""
    plot_width, plot_height = _plot_size()
    top_value = nice_ceiling(max((v for _, values in series for v in values), default=0))
    step = plot_width / max(len(labels) - 1, 1)
    lines = []
    for n, (name, values) in enumerate(series):
        points = " ".join(
            f"{LEFT + i * step:.1f},{TOP + plot_height - _scaled(v, top_value):.1f}" for i, v in enumerate(values)
        )
        lines.append(Line(name=name, points=points, colour=COLOURS[n % len(COLOURS)], dash=DASHES[n % len(DASHES)],
                          legend_y=TOP + 14 * n))
    return Chart(id=chart_id, title=title, description=description, plot_width=plot_width,
                 plot_height=plot_height, y_ticks=_y_ticks(top_value), x_ticks=_x_ticks(labels, step, centred=False),
                 lines=lines)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1): a readable axis top."""
    if value <= 1:
        return 1
    power: int = 10 ** int(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * power >= value:
            return factor * power
    return 10 * power


def _plot_size() -> tuple[float, float]:
    return float(WIDTH - LEFT - RIGHT), float(HEIGHT - TOP - BOTTOM)


def _scaled(value: int, top_value: int) -> float:
    return (HEIGHT - TOP - BOTTOM) * value / top_value


def _y_ticks(top_value: int) -> list[Tick]:
    plot_height = HEIGHT - TOP - BOTTOM
    return [Tick(at=round(TOP + plot_height - plot_height * i / 4, 2), label=f"{top_value * i // 4:,}")
            for i in range(5)]


def _x_ticks(labels: Sequence[str], step: float, *, centred: bool) -> list[Tick]:
    # At most about eight labels fit under the axis; the table beside the chart has every one.
    every = max(1, math.ceil(len(labels) / 8))
    offset = step / 2 if centred else 0.0
    return [Tick(at=round(LEFT + i * step + offset, 2), label=label)
            for i, label in enumerate(labels) if i % every == 0]
