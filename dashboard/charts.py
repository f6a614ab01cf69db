"""Line charts as SVG, drawn on the server: no script, no library, no external request.

A chart is an ``<svg role="img">`` with a title and a description (its latest and largest
values, for screen readers), a y axis from 0 to a round maximum, hour marks along the x
axis, and one polyline per series, broken where a bucket has no value. The page's styles
colour the series (``series-0`` …); the legend names them.
"""

import math
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from operations.history import Chart

WIDTH, HEIGHT = 640, 200
# Room for the y labels on the left and the x labels below.
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 22
SERIES_STYLES = 6  # series-0 … series-5 in dashboard.css, then again from 0


def line_chart(chart: Chart, starts: list[datetime], *, chart_id: str) -> SafeString:
    values = [value for series in chart.series for value in series.values if value is not None]
    top = _round_up(max(values, default=0.0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(len(starts), 1)

    def x(index: int) -> float:
        return LEFT + plot_width * index / max(count - 1, 1)

    def y(value: float) -> float:
        return TOP + plot_height * (1 - value / top)

    lines = []
    for number, series in enumerate(chart.series):
        for run in _runs(series.values):
            points = " ".join(f"{x(index):.1f},{y(value):.1f}" for index, value in run)
            lines.append((series_class(number), points))
    grid = [(y(top * step / 4), _label(top * step / 4)) for step in range(5)]
    hours = [
        (x(index), f"{start:%H:%M}")
        for index, start in enumerate(starts)
        if index % max(count // 6, 1) == 0
    ]
    return format_html(
        '<svg class="chart" id="{}" role="img" viewBox="0 0 {} {}"'
        ' aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{} ({})</title><desc id="{}-desc">{}</desc>'
        "{}{}{}"
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
        "</svg>",
        chart_id,
        WIDTH,
        HEIGHT,
        chart_id,
        chart_id,
        chart_id,
        chart.title,
        chart.unit,
        chart_id,
        _description(chart),
        format_html_join(
            "",
            '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
            '<text class="y-label" x="{}" y="{}">{}</text>',
            (
                (LEFT, f"{gy:.1f}", WIDTH - RIGHT, f"{gy:.1f}", LEFT - 4, f"{gy + 4:.1f}", label)
                for gy, label in grid
            ),
        ),
        format_html_join(
            "",
            '<text class="x-label" x="{}" y="{}">{}</text>',
            ((f"{gx:.1f}", HEIGHT - 6, label) for gx, label in hours),
        ),
        format_html_join("", '<polyline class="{}" points="{}"></polyline>', lines),
        LEFT,
        TOP + plot_height,
        WIDTH - RIGHT,
        TOP + plot_height,
    )


def series_class(number: int) -> str:
    """The style of a chart's ``number``-th series (its line, and its swatch in a legend)."""
    return f"series-{number % SERIES_STYLES}"


def _runs(values: list[float | None]) -> list[list[tuple[int, float]]]:
    """The stretches of consecutive values: a gap (None) breaks the line."""
    runs, current = [], []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        runs.append(current)
    # A lone point would draw nothing as a polyline: it gets a short flat stroke.
    return [run if len(run) > 1 else [run[0], (run[0][0] + 0.3, run[0][1])] for run in runs]


def _round_up(value: float) -> float:
    """A round top for the y axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _label(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def _description(chart: Chart) -> str:
    said = []
    for series in chart.series:
        known = [value for value in series.values if value is not None]
        if known:
            said.append(f"{series.name}: latest {known[-1]:g}, highest {max(known):g} {chart.unit}")
        else:
            said.append(f"{series.name}: no data")
    return "; ".join(said) or "No data yet."
