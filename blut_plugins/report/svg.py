"""Small pieces of inline SVG: scales, ticks, axes, lines and boxes (no library, no script).

Every text that comes from a run (stage names, errors, metric names) goes through
:func:`esc`; every number is written with a fixed precision so documents are reproducible.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence

import attrs

from blut_core import format_size
from blut_core.model import record_repr


def esc(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute."""
    return html.escape(str(text), quote=True)


def num(x: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def seconds(s: float) -> str:
    """An axis label for a time: ``0.25s``, ``12s``, ``3m05s``, ``2h10m``."""
    if s < 10:
        return f"{s:.2g}s" if s else "0s"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def plain(x: float) -> str:
    """An axis label for a metric value: ``0.25``, ``1200``, ``47.5k``, ``3.2M``."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= 10 * div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.4g}"


def size_tick(n: float) -> str:
    """An axis label for a size: ``0``, ``256 MiB``, ``1.5 GiB``."""
    return "0" if n <= 0 else format_size(int(n)).replace(".0 ", " ")


@attrs.frozen
class Scale:
    """A linear map from data ``[lo, hi]`` to pixels ``[a, b]``."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, x: float) -> float:
        span = self.hi - self.lo
        if span <= 0:
            return self.a
        return self.a + (x - self.lo) / span * (self.b - self.a)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def byte_ticks(hi: float, n: int = 4) -> list[float]:
    """Round sizes in binary units (``0, 256 MiB, 512 MiB, ...``) covering ``[0, hi]``."""
    if hi <= 0:
        return [0.0]
    power = max(0, min(4, int(math.log(hi, 1024))))
    if power and hi / 1024 ** power < 2:
        power -= 1  # 0-1.5 GiB reads better as 0, 500, 1000, 1500 MiB than in tenths of a GiB
    unit = 1024 ** power
    return [t * unit for t in nice_ticks(0, hi / unit, n)]


def svg(width: float, height: float, body: Iterable[str], *, label: str, cls: str = "") -> str:
    """One ``<svg>`` element (``label``: what it shows, for screen readers)."""
    return (f'<svg class="{esc(cls)}" width="{num(width)}" height="{num(height)}" '
            f'viewBox="0 0 {num(width)} {num(height)}" role="img" aria-label="{esc(label)}">'
            + "".join(body) + "</svg>")


def rect(x: float, y: float, w: float, h: float, *, fill: str, title: str = "",
         extra: str = "") -> str:
    tip = f"<title>{esc(title)}</title>" if title else ""
    return (f'<rect x="{num(x)}" y="{num(y)}" width="{num(max(w, 0.0))}" height="{num(h)}" '
            f'fill="{fill}"{extra}>{tip}</rect>')


def text(x: float, y: float, content: object, *, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{num(x)}" y="{num(y)}" text-anchor="{anchor}"{klass}>{esc(content)}</text>'


def line(x1: float, y1: float, x2: float, y2: float, *, cls: str = "grid") -> str:
    return f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" class="{cls}"/>'


def polyline(points: Sequence[tuple[float, float]], *, stroke: str, cls: str = "series",
             extra: str = "") -> str:
    coords = " ".join(f"{num(x)},{num(y)}" for x, y in points)
    return f'<polyline points="{coords}" fill="none" stroke="{stroke}" class="{cls}"{extra}/>'


def step_points(series: Sequence[tuple[float, float]], end: float) -> list[tuple[float, float]]:
    """A step function ``[(t, level from t on)]`` as the corners of a polyline up to ``end``."""
    out: list[tuple[float, float]] = []
    for i, (t, level) in enumerate(series):
        if i:
            out.append((t, series[i - 1][1]))
        out.append((t, level))
    if series:
        out.append((max(end, series[-1][0]), series[-1][1]))
    return out


def x_axis(scale: Scale, y: float, top: float, fmt: Callable[[float], str], ticks: Sequence[float]
           ) -> list[str]:
    """Vertical grid lines from ``top`` to ``y`` and labels under ``y``."""
    out = []
    for t in ticks:
        x = scale(t)
        out += [line(x, top, x, y), text(x, y + 14, fmt(t), anchor="middle", cls="tick")]
    return out


def y_axis(scale: Scale, x0: float, x1: float, ticks: Sequence[float],
           fmt: Callable[[float], str] = size_tick) -> list[str]:
    """Horizontal grid lines across ``[x0, x1]`` and labels left of ``x0``."""
    out = []
    for t in ticks:
        y = scale(t)
        out += [line(x0, y, x1, y), text(x0 - 6, y + 4, fmt(t), anchor="end", cls="tick")]
    return out
