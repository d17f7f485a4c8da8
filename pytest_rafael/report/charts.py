"""Inline SVG line charts with axes, ticks, labels and a legend.

The report is one offline file with no script, so charts are static SVG drawn here.
Every text that reaches the SVG (titles, series names, tick labels) goes through
``markupsafe.escape``: series names are module and scenario names from user YAML.
Colours come from CSS classes (``s0``..``s7``, ``pt-pass``...) so light, dark and print
styles restyle the charts without re-rendering them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE_SIZE = 8
# Above this many points a line is decimated (min and max of each bucket are kept, so
# spikes and dips stay visible) to keep a 10,000-iteration run's file small.
MAX_POINTS = 400
# Point markers only while they stay distinguishable.
MAX_MARKERS = 80

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (x, y) with y None for a gap (e.g. a skipped iteration);
    ``marks`` optionally gives each point a marker class (``pass``, ``fail``...)."""

    name: str
    points: tuple[Point, ...]
    marks: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Frame:
    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float

    def sx(self, x: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return self.left + (x - self.x0) / span * self.width

    def sy(self, y: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return self.top + self.height - (y - self.y0) / span * self.height


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^n steps) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def decimate(
    points: Sequence[Point], marks: Sequence[str], limit: int = MAX_POINTS
) -> tuple[list[Point], list[str]]:
    """Reduce ``points`` to about ``limit`` keeping each bucket's lowest and highest y."""
    if len(points) <= limit:
        return list(points), list(marks)
    buckets = max(limit // 2, 1)
    size = len(points) / buckets
    out: list[Point] = []
    out_marks: list[str] = []
    for b in range(buckets):
        chunk = range(int(b * size), min(int((b + 1) * size), len(points)))
        valued = [i for i in chunk if points[i][1] is not None]
        if not valued:
            if chunk:
                out.append((points[chunk[0]][0], None))
                out_marks.append("")
            continue
        lo = min(valued, key=lambda i: points[i][1] or 0.0)
        hi = max(valued, key=lambda i: points[i][1] or 0.0)
        for i in sorted({lo, hi}):
            out.append(points[i])
            out_marks.append(marks[i] if i < len(marks) else "")
    return out, out_marks


def _path(frame: _Frame, points: Sequence[Point]) -> str:
    parts: list[str] = []
    pen_down = False
    for x, y in points:
        if y is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{frame.sx(x):.1f},{frame.sy(y):.1f}")
        pen_down = True
    return "".join(parts)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    y_min: float | None = 0.0,
    y_max: float | None = 1.0,
    threshold: float | None = None,
    threshold_label: str = "gate",
    x_tick_labels: Mapping[float, str] | None = None,
    width: int = 640,
    height: int = 260,
) -> Markup:
    """An SVG line chart. ``y_min``/``y_max`` are widened when data fall outside them;
    ``x_tick_labels`` replaces numeric x ticks (e.g. run dates); ``threshold`` draws a
    dashed horizontal line (the fitness gate)."""
    prepared = [(s, *decimate(s.points, s.marks)) for s in series]
    xs = [x for _, pts, _ in prepared for x, _ in pts]
    ys = [y for _, pts, _ in prepared for _, y in pts if y is not None]
    if threshold is not None:
        ys.append(threshold)
    lo, hi, y_ticks = _y_range(ys, y_min, y_max)
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    legend = len(series) > 1
    legend_rows = math.ceil(len(series) / 3) if legend else 0
    total_h = height + legend_rows * 18 + (6 if legend else 0)
    frame = _Frame(
        left=52, top=30, width=width - 52 - 16, height=height - 30 - 46, x0=x0, x1=x1, y0=lo, y1=hi
    )
    out: list[str] = [
        f'<svg class="chart" viewBox="0 0 {width} {total_h}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="ct" x="{frame.left}" y="18">{escape(title)}</text>',
    ]
    out += _axes(frame, y_ticks, _x_ticks(xs, x0, x1, x_tick_labels), x_label, y_label)
    if threshold is not None:
        out.append(_threshold(frame, threshold, threshold_label))
    if not ys or all(y is None for _, pts, _ in prepared for _, y in pts):
        mid = frame.top + frame.height / 2
        out.append(
            f'<text class="tick" x="{frame.left + frame.width / 2:.1f}" y="{mid:.1f}" '
            'text-anchor="middle">no values recorded</text>'
        )
    for n, (_series, pts, marks) in enumerate(prepared):
        out += _series_svg(frame, n, pts, marks)
    if legend:
        out += _legend(frame, series, height)
    out.append("</svg>")
    return Markup("".join(out))


def _y_range(
    ys: list[float], y_min: float | None, y_max: float | None
) -> tuple[float, float, list[float]]:
    lo = min([*ys, *([y_min] if y_min is not None else [])], default=0.0)
    hi = max([*ys, *([y_max] if y_max is not None else [])], default=1.0)
    if hi <= lo:
        hi = lo + 1.0
    y_ticks = nice_ticks(lo, hi)
    return min(lo, y_ticks[0]), max(hi, y_ticks[-1]), y_ticks


def _x_ticks(
    xs: list[float], x0: float, x1: float, x_tick_labels: Mapping[float, str] | None
) -> list[tuple[float, str]]:
    if x_tick_labels:
        items = sorted(x_tick_labels.items())
        stride = max(1, math.ceil(len(items) / 6))
        shown = items[::stride]
        if items[-1] not in shown:
            shown.append(items[-1])
        return [(x, label) for x, label in shown]
    integer = all(float(x).is_integer() for x in xs)
    raw = nice_ticks(x0, x1, 7)
    return [(x, _fmt(x)) for x in raw if not integer or float(x).is_integer()]


def _axes(
    frame: _Frame,
    y_ticks: list[float],
    x_ticks: list[tuple[float, str]],
    x_label: str,
    y_label: str,
) -> list[str]:
    """Grid lines and tick labels, both axes and their labels."""
    out: list[str] = []
    bottom = frame.top + frame.height
    right = frame.left + frame.width
    for t in y_ticks:
        y = frame.sy(t)
        out.append(
            f'<line class="grid" x1="{frame.left}" x2="{right}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/><text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(_fmt(t))}</text>'
        )
    for x, label in x_ticks:
        sx = frame.sx(x)
        # A long label at the right edge would be clipped by the viewBox: end-align it.
        anchor = "end" if sx > right - 3.5 * len(label) else "middle"
        out.append(
            f'<line class="axis" x1="{sx:.1f}" x2="{sx:.1f}" y1="{bottom}" '
            f'y2="{bottom + 4}"/><text class="tick" x="{sx:.1f}" y="{bottom + 16}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    out.append(
        f'<line class="axis" x1="{frame.left}" x2="{right}" y1="{bottom}" '
        f'y2="{bottom}"/><line class="axis" x1="{frame.left}" x2="{frame.left}" '
        f'y1="{frame.top}" y2="{bottom}"/>'
    )
    out.append(
        f'<text class="al" x="{frame.left + frame.width / 2:.1f}" y="{bottom + 36}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    mid = frame.top + frame.height / 2
    out.append(
        f'<text class="al" x="14" y="{mid:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid:.1f})">{escape(y_label)}</text>'
    )
    return out


def _threshold(frame: _Frame, threshold: float, label: str) -> str:
    ty = frame.sy(threshold)
    return (
        f'<line class="thr" x1="{frame.left}" x2="{frame.left + frame.width}" y1="{ty:.1f}" '
        f'y2="{ty:.1f}"/><text class="thl" x="{frame.left + 4}" y="{ty - 4:.1f}" '
        f'text-anchor="start">{escape(label)} {escape(_fmt(threshold))}'
        "</text>"
    )


def _series_svg(frame: _Frame, n: int, pts: Sequence[Point], marks: Sequence[str]) -> list[str]:
    out: list[str] = []
    cls = f"s{n % PALETTE_SIZE}"
    d = _path(frame, pts)
    if d:
        out.append(f'<path class="ln {cls}" d="{d}"/>')
    if len(pts) <= MAX_MARKERS:
        for i, (px, py) in enumerate(pts):
            if py is None:
                continue
            mark = marks[i] if i < len(marks) and marks[i] else ""
            mcls = f"pt pt-{escape(mark)}" if mark else f"pt {cls}f"
            out.append(
                f'<circle class="{mcls}" cx="{frame.sx(px):.1f}" cy="{frame.sy(py):.1f}" r="3.5"/>'
            )
    return out


def _legend(frame: _Frame, series: Sequence[Series], height: int) -> list[str]:
    out: list[str] = []
    for n, s in enumerate(series):
        lx = frame.left + (n % 3) * (frame.width / 3)
        ly = height + 10 + (n // 3) * 18
        out.append(
            f'<line class="ln s{n % PALETTE_SIZE}" x1="{lx:.1f}" x2="{lx + 18:.1f}" '
            f'y1="{ly - 4:.1f}" y2="{ly - 4:.1f}"/><text class="tick" '
            f'x="{lx + 24:.1f}" y="{ly:.1f}">{escape(_shorten(s.name, 38))}</text>'
        )
    return out


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
