"""One run as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched.

Sections: the run (recipe, outcome, wall, host, params), attempts over time, memory of the
run and of the machine, estimate against measured peak per attempt, metric curves, and
every attempt's figures in a table. Opens the same in any browser, offline, years later.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from blut_core import format_size
from blut_plugins.report import charts
from blut_plugins.report.svg import esc
from blut_plugins.report.timeline import OUTCOMES, Timeline, load

MAX_METRICS = 36

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1d232a;
       background: #ffffff; margin: 24px; max-width: 1140px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.sub { color: #555c66; margin-bottom: 12px; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { color: #555c66; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.attempts td, table.attempts th { border-bottom: 1px solid #e3e6ea; }
svg text { font: 11px system-ui, sans-serif; fill: #1d232a; }
svg text.tick { fill: #555c66; } svg text.title { font-weight: 600; }
svg .grid { stroke: #e3e6ea; stroke-width: 1; } svg .axis { stroke: #8d949c; }
svg .series { stroke-width: 2; } svg .thin { stroke-width: 1; stroke-dasharray: 4 3; }
.legend { margin: 2px 0 4px; color: #333; }
.key { margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
          vertical-align: -1px; border-radius: 2px; }
.metrics { display: flex; flex-wrap: wrap; gap: 8px; }
.note { color: #555c66; font-size: 12px; }
pre { background: #f4f6f8; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

_STATE_COLOURS = {"ok": "#2a9d4b", "failed": "#d62828", "cancelled": "#555c66",
                  "refused": "#7a1f1f", "running": "#1c7ed6", "interrupted": "#f08c00"}


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _secs(s: float | None) -> str:
    return "-" if s is None else f"{s:.3f}s"


def _header(tl: Timeline) -> str:
    prov = tl.provenance
    counts: dict[str, int] = {}
    for a in tl.attempts:
        counts[a.outcome] = counts.get(a.outcome, 0) + 1
    colour = _STATE_COLOURS.get(tl.state, "#555c66")
    git = prov.get("recipe_git") or {}
    code = (f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}"
            if isinstance(git, dict) and git.get("commit") else "-")
    host = (f"{prov.get('host', '?')} ({prov.get('cores', '?')} cores, "
            f"{format_size(prov.get('ram_bytes'))})")
    rows = [("run", tl.run_id), ("recipe", tl.recipe),
            *([("schedule", tl.schedule)] if tl.schedule else []), ("started", _when(tl.started)),
            ("wall", _secs(tl.wall) if tl.wall is not None else f"{tl.span:.3f}s so far"),
            ("stages", str(len(tl.stages))),
            ("attempts", ", ".join(f"{n} {charts.LABELS.get(k, k)}" for k, n in sorted(counts.items()))
             or "none"),
            ("code", code), ("host", host), ("blut", str(prov.get("blut_version", "-")))]
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return (f'<h1>{esc(tl.recipe)} <span class="state" style="background:{colour}" '
            f'data-state="{esc(tl.state)}">{esc(tl.state)}</span></h1>'
            f'<div class="sub">run {esc(tl.run_id)}</div>'
            f'<table class="run" data-run="{esc(tl.run_id)}" data-span="{tl.span:.6f}"'
            f' data-wall="{"" if tl.wall is None else f"{tl.wall:.6f}"}">'
            f"{cells}</table>")


def _attempt_table(tl: Timeline) -> str:
    head = ("stage", "attempt", "outcome", "start", "duration", "waited", "estimate", "cap",
            "peak", "error")
    out = ["<table class=\"attempts\"><tr>", *(f"<th>{h}</th>" for h in head), "</tr>"]
    for a in tl.attempts:
        cells = [esc(a.stage), str(a.attempt), esc(charts.LABELS.get(a.outcome, a.outcome)),
                 _secs(a.start), _secs(a.duration), _secs(a.waited) if a.waited else "",
                 esc(format_size(a.footprint)), esc(format_size(a.cap)), esc(format_size(a.peak))]
        out.append(f'<tr class="attempt-row" data-stage="{esc(a.stage)}" data-attempt="{a.attempt}"'
                   f' data-outcome="{esc(a.outcome)}"'
                   f' data-duration="{"" if a.duration is None else f"{a.duration:.6f}"}"'
                   f' data-peak="{"" if a.peak is None else a.peak}">'
                   + "".join(f'<td class="n">{c}</td>' if i in (1, 3, 4, 5, 6, 7, 8) else f"<td>{c}</td>"
                             for i, c in enumerate(cells))
                   + f"<td>{esc((a.error or '')[:300])}</td></tr>")
    for name, state in tl.settled.items():
        out.append(f'<tr class="settled" data-stage="{esc(name)}" data-state="{esc(state)}">'
                   f"<td>{esc(name)}</td><td></td><td>{esc(state)}</td>"
                   + "<td></td>" * 7 + "</tr>")
    out.append("</table>")
    return "".join(out)


def _metrics(tl: Timeline) -> str:
    """Curves of metrics reported more than once; a table of those reported once."""
    if not tl.metrics:
        return '<p class="note">The run reported no numeric metrics.</p>'
    curves = [c for c in tl.metrics if max(len(p) for p in c.points.values()) > 1]
    single = [c for c in tl.metrics if c not in curves]
    out = []
    if curves:
        shown = curves[:MAX_METRICS]
        out.append('<div class="metrics">' + "".join(charts.metric_chart(c) for c in shown)
                   + "</div>")
        if len(curves) > len(shown):
            out.append(f'<p class="note">… and {len(curves) - len(shown)} more metric curves.</p>')
    if single:
        out.append('<table class="values"><tr><th>stage</th><th>metric</th><th>value</th></tr>'
                   + "".join(f'<tr data-stage="{esc(c.stage)}" data-metric="{esc(c.name)}" '
                             f'data-last="{c.last:.6g}"><td>{esc(c.stage)}</td><td>{esc(c.name)}</td>'
                             f'<td class="n">{c.last:.6g}</td></tr>' for c in single)
                   + "</table>")
    return "".join(out)


def render(tl: Timeline) -> str:
    """The whole document for ``tl``."""
    used = [k for k in OUTCOMES if any(a.outcome == k for a in tl.attempts)]
    params = json.dumps(tl.params, indent=2, sort_keys=True, default=str)
    mem_keys = ["booked", "measured"]
    machine_keys = ["booked", "available", "elsewhere"]
    mem_labels = {"booked": "booked by this run", "measured": "measured (each attempt's peak)",
                  "available": "available (at each admission)",
                  "elsewhere": "booked by other stages and runs (at each admission)"}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>blut run {esc(tl.run_id)}</title><style>{CSS}</style></head><body>",
        _header(tl),
        "<h2>Attempts over time</h2>",
        charts.legend([*used, "wait"], {**charts.COLOURS, "wait": charts.WAIT},
                      {**charts.LABELS, "wait": "waiting for memory"}),
        charts.gantt(tl),
        "<h2>Memory of this run</h2>",
        charts.legend(mem_keys, charts.SERIES, mem_labels),
        charts.run_memory(tl),
        '<p class="note">The run records each attempt\'s kernel peak, not its use over time: '
        "the measured line holds each attempt's peak while it ran.</p>",
        "<h2>Memory of the machine</h2>",
        charts.legend(machine_keys, charts.SERIES, mem_labels),
        charts.machine_memory(tl),
        "<h2>Estimate against measured peak</h2>",
        '<p class="note">Light bar: the estimate booked; dashed box: the kernel cap; '
        "dark bar: the measured peak (red when the cap killed it).</p>",
        charts.estimates(tl),
        "<h2>Metrics</h2>", _metrics(tl),
        "<h2>Every attempt</h2>", _attempt_table(tl),
        "<h2>Params</h2>", f"<pre>{esc(params)}</pre>",
        f'<p class="note">Written by blut from {esc(tl.run_id)}/status.jsonl.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_run(run_dir: Path) -> str:
    """The report of the run in ``run_dir``."""
    return render(load(run_dir))
