"""The report's figures, each one inline SVG built from a :class:`Timeline`.

- :func:`gantt`: one row per stage, one bar per attempt, coloured by how it ended, with the
  time admission held it back drawn before it;
- :func:`run_memory`: what the run booked against what its stages were measured to use;
- :func:`machine_memory`: the machine's available memory and what was booked on it;
- :func:`estimates`: per attempt, the estimate, the cap and the measured peak;
- :func:`metric_chart`: one metric of one stage, a line per attempt.

Bars carry ``data-*`` attributes with the recorded figures (seconds, bytes), so what the
picture shows can be checked against the run's records.
"""

from __future__ import annotations

from collections.abc import Sequence

from blut_core import format_size
from blut_plugins.report.svg import (
    Scale,
    byte_ticks,
    esc,
    line,
    nice_ticks,
    num,
    plain,
    polyline,
    rect,
    seconds,
    size_tick,
    step_points,
    svg,
    text,
    x_axis,
    y_axis,
)
from blut_plugins.report.timeline import AttemptSpan, MetricCurve, Timeline

COLOURS = {"ok": "#2a9d4b", "oom": "#d62828", "retried": "#f08c00", "pruned": "#8e44ad",
           "cached": "#7d8ca3", "failed": "#7a1f1f", "cancelled": "#555c66", "running": "#1c7ed6"}
LABELS = {"ok": "ok", "oom": "OOM-killed", "retried": "failed, retried", "pruned": "pruned",
          "cached": "cached", "failed": "failed", "cancelled": "cancelled", "running": "running"}
WAIT = "#f2c94c"
SERIES = {"booked": "#1c7ed6", "measured": "#d62828", "available": "#2a9d4b", "elsewhere": "#f08c00"}
ATTEMPT_COLOURS = ("#1c7ed6", "#d62828", "#2a9d4b", "#8e44ad", "#f08c00", "#555c66")

WIDTH = 1100
LEFT = 190   # room for stage names
RIGHT = 20
MAX_ROWS = 400


def _data(a: AttemptSpan) -> str:
    fields = {"stage": a.stage, "attempt": a.attempt, "outcome": a.outcome,
              "start": a.start, "end": a.end, "duration": a.duration, "footprint": a.footprint,
              "cap": a.cap, "peak": a.peak}
    return "".join(f' data-{k}="{esc(f"{v:.6f}" if isinstance(v, float) else v)}"'
                   for k, v in fields.items() if v is not None)


def _tip(a: AttemptSpan) -> str:
    parts = [f"{a.stage} attempt {a.attempt}: {LABELS.get(a.outcome, a.outcome)}"]
    if a.duration is not None:
        parts.append(f"{a.duration:.3f}s")
    if a.waited:
        parts.append(f"waited {a.waited:.2f}s for memory")
    if a.cap:
        parts.append(f"cap {format_size(a.cap)}")
    if a.peak:
        parts.append(f"peak {format_size(a.peak)}")
    if a.error:
        parts.append(a.error[:200])
    return "; ".join(parts)


def gantt(tl: Timeline) -> str:
    """Attempts over time, one row per stage."""
    rows = list(dict.fromkeys([*tl.stages, *(a.stage for a in tl.attempts)]))[:MAX_ROWS]
    row_h, top = 20, 8
    height = top + row_h * max(1, len(rows)) + 28
    x = Scale(0.0, max(tl.span, 1e-3), LEFT, WIDTH - RIGHT)
    bottom = top + row_h * len(rows)
    body = x_axis(x, bottom, top, seconds, nice_ticks(0.0, x.hi, 8))
    index = {name: i for i, name in enumerate(rows)}
    for name, i in index.items():
        y = top + i * row_h
        settled = tl.settled.get(name)
        label = f"{name} ({settled})" if settled and settled not in ("ok", "cached") else name
        body.append(text(LEFT - 8, y + row_h * 0.7, label, anchor="end", cls="stage"))
    for a in tl.attempts:
        if a.stage not in index or a.start is None:
            continue
        y = top + index[a.stage] * row_h + 3
        h = row_h - 6
        if a.waited and a.admitted is not None:
            x0 = x(max(0.0, a.admitted - a.waited))
            body.append(rect(x0, y + h / 3, x(a.admitted) - x0, h / 3, fill=WAIT,
                             title=f"{a.stage}: waited {a.waited:.2f}s for memory",
                             extra=' class="wait"'))
        end = a.end if a.end is not None else tl.span
        w = max(x(end) - x(a.start), 2.0)
        body.append(rect(x(a.start), y, w, h, fill=COLOURS.get(a.outcome, "#999"), title=_tip(a),
                         extra=f' class="attempt"{_data(a)}'))
    return svg(WIDTH, height, body, label="attempts over time", cls="gantt")


def legend(keys: Sequence[str], colours: dict[str, str], labels: dict[str, str]) -> str:
    items = "".join(f'<span class="key"><span class="swatch" style="background:{colours[k]}">'
                    f'</span>{esc(labels.get(k, k))}</span>' for k in keys)
    return f'<div class="legend">{items}</div>'


def _chart(series: dict[str, list[tuple[float, float]]], end: float, *, label: str,
           ymax: float | None = None, dots: dict[str, list[tuple[float, float]]] | None = None,
           height: int = 220) -> str:
    top, bottom = 10, height - 26
    hi = max([ymax or 0.0, *(v for pts in series.values() for _, v in pts),
              *(v for pts in (dots or {}).values() for _, v in pts)]) or 1.0
    x = Scale(0.0, max(end, 1e-3), LEFT, WIDTH - RIGHT)
    y = Scale(0.0, hi * 1.05, bottom, top)
    body = [*x_axis(x, bottom, top, seconds, nice_ticks(0.0, x.hi, 8)),
            *y_axis(y, LEFT, WIDTH - RIGHT, byte_ticks(hi), size_tick)]
    for name, pts in series.items():
        if pts:
            body.append(polyline([(x(t), y(v)) for t, v in step_points(pts, end)],
                                 stroke=SERIES[name], extra=f' data-series="{name}" '
                                 f'data-max="{max(v for _, v in pts):.0f}"'))
    for name, pts in (dots or {}).items():
        if pts:
            body.append(polyline([(x(t), y(v)) for t, v in pts], stroke=SERIES[name],
                                 cls="series thin", extra=f' data-series="{name}"'))
            body += [f'<circle cx="{num(x(t))}" cy="{num(y(v))}" r="2.5" fill="{SERIES[name]}">'
                     f'<title>{esc(name)} {esc(format_size(int(v)))} at {esc(seconds(t))}</title>'
                     f'</circle>' for t, v in pts]
    return svg(WIDTH, height, body, label=label, cls="chart")


def run_memory(tl: Timeline) -> str:
    """What the run booked against the measured peaks of its running attempts."""
    booked = [(t, float(v)) for t, v in tl.booked()]
    measured = [(t, float(v)) for t, v in tl.measured()]
    return _chart({"booked": booked, "measured": measured}, tl.span, label="memory of this run")


def machine_memory(tl: Timeline) -> str:
    """The machine's available memory and the bookings on it, at each admission decision."""
    booked = [(t, float(v)) for t, v in tl.booked()]
    available = [(p.t, float(p.available)) for p in tl.machine]
    elsewhere = [(p.t, float(p.booked_elsewhere)) for p in tl.machine]
    box = max((p.box or 0 for p in tl.machine), default=0)
    return _chart({"booked": booked}, tl.span, label="memory of the machine", ymax=float(box),
                  dots={"available": available, "elsewhere": elsewhere})


def estimates(tl: Timeline) -> str:
    """Per attempt that ran: estimate (booked), cap and measured peak, on one byte scale."""
    ran = [a for a in tl.attempts if a.ran and a.outcome != "cached"][:MAX_ROWS]
    row_h, top = 22, 8
    height = top + row_h * max(1, len(ran)) + 28
    hi = max([1.0, *(float(v) for a in ran for v in (a.footprint, a.cap, a.peak) if v)])
    x = Scale(0.0, hi * 1.05, LEFT, WIDTH - RIGHT - 130)
    bottom = top + row_h * len(ran)
    body = x_axis(x, bottom, top, size_tick, byte_ticks(hi, 6))
    for i, a in enumerate(ran):
        y = top + i * row_h
        body.append(text(LEFT - 8, y + row_h * 0.65, f"{a.stage} #{a.attempt}", anchor="end",
                         cls="stage"))
        if a.cap:
            body.append(rect(x(0), y + 3, x(a.cap) - x(0), row_h - 6, fill="none",
                             extra=' class="cap" stroke="#555c66" stroke-dasharray="3 2"'))
        if a.footprint:
            body.append(rect(x(0), y + 4, x(a.footprint) - x(0), row_h - 8, fill="#a5c8f0",
                             title=f"estimate {format_size(a.footprint)}", extra=' class="estimate"'))
        if a.peak:
            colour = COLOURS["oom"] if a.outcome == "oom" else "#0b4f8a"
            body.append(rect(x(0), y + 8, x(a.peak) - x(0), row_h - 16, fill=colour,
                             title=f"peak {format_size(a.peak)}", extra=f' class="peak"{_data(a)}'))
        ratio = f" ({a.peak / a.footprint:.0%})" if a.peak and a.footprint else ""
        body.append(text(WIDTH - RIGHT - 122, y + row_h * 0.65,
                         f"{format_size(a.peak)}{ratio}" if a.peak else "no peak", cls="value"))
    return svg(WIDTH, height, body, label="estimate against measured peak", cls="estimates")


def metric_chart(curve: MetricCurve, width: int = 350, height: int = 170) -> str:
    """One metric of one stage; one line per attempt."""
    left, right, top, bottom = 52, 10, 24, height - 24
    xs = [p[0] for pts in curve.points.values() for p in pts]
    ys = [p[1] for pts in curve.points.values() for p in pts]
    lo, hi = min(ys), max(ys)
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
    x = Scale(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, left, width - right)
    y = Scale(lo, hi, bottom, top)
    fmt = plain if curve.by_step else seconds
    body = [text(left, 14, f"{curve.stage} · {curve.name}", cls="title"),
            *x_axis(x, bottom, top, fmt, nice_ticks(x.lo, x.hi, 4)),
            *y_axis(y, left, width - right, nice_ticks(lo, hi, 4), plain)]
    for n, pts in curve.points.items():
        colour = ATTEMPT_COLOURS[(n - 1) % len(ATTEMPT_COLOURS)]
        coords = [(x(px), y(py)) for px, py in pts]
        extra = (f' data-stage="{esc(curve.stage)}" data-metric="{esc(curve.name)}" '
                 f'data-attempt="{n}" data-points="{len(pts)}" data-last="{pts[-1][1]:.6g}"')
        if len(coords) == 1:
            coords.append((coords[0][0] + 1, coords[0][1]))
        body.append(polyline(coords, stroke=colour, extra=extra))
        body += [f'<circle cx="{num(cx)}" cy="{num(cy)}" r="2" fill="{colour}"/>'
                 for cx, cy in coords[-1:]]
    body.append(line(left, bottom, width - right, bottom, cls="axis"))
    return svg(width, height, body, label=f"metric {curve.name} of {curve.stage}", cls="metric")
