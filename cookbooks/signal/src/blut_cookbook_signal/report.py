"""A Markdown report of a codec sweep: one row per configuration, the trade-off marked.

A configuration is on the **Pareto front** (``*``) when no other one has both a higher
compression ratio and a higher SNR. Rows are sorted by compression ratio, highest first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: (heading, key, format) of the table's columns.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("config", "config", "{}"),
    ("quantizer", "quantizer", "{}"),
    ("window", "window", "{}"),
    ("spatial", "spatial", "{}"),
    ("temporal", "temporal", "{}"),
    ("bits", "bits", "{}"),
    ("batch", "batch", "{}"),
    ("CR", "compression_ratio", "{:.1f}"),
    ("CR+model", "compression_ratio_with_model", "{:.1f}"),
    ("SNR dB", "snr_db", "{:.2f}"),
    ("PRD %", "prd", "{:.1f}"),
    ("PRDN %", "prdn", "{:.1f}"),
    ("band err dB", "band_error_db", "{:.2f}"),
    ("RMS err %", "rms_error_pct", "{:.1f}"),
)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def pareto(rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each row, whether no other row beats it on both compression ratio and SNR."""
    points = [(_number(r.get("compression_ratio")), _number(r.get("snr_db"))) for r in rows]
    out = []
    for i, (cr, snr) in enumerate(points):
        dominated = any(j != i and c2 >= cr and s2 >= snr and (c2 > cr or s2 > snr)
                        for j, (c2, s2) in enumerate(points))
        out.append(not dominated and not (math.isnan(cr) or math.isnan(snr)))
    return out


def _cell(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The table, sorted by compression ratio (highest first), Pareto rows starred."""
    ordered = sorted(rows, key=lambda r: -_number(r.get("compression_ratio")))
    front = pareto(ordered)
    head = ["", *(h for h, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row, best in zip(ordered, front, strict=True):
        cells = ["*" if best else "", *(_cell(fmt, row.get(key)) for _, key, fmt in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_report(rows: Sequence[Mapping[str, Any]], *, title: str = "Codec sweep",
                  signal: Mapping[str, Any] | None = None) -> str:
    """The whole report: a heading, what was coded, the table, a note per Pareto config."""
    lines = [f"# {title}", ""]
    if signal:
        lines += [f"Signal: {signal.get('channels')} channels, {signal.get('samples')} samples at "
                  f"{signal.get('fs')} Hz (seed {signal.get('seed')}); metrics on the held-out "
                  "part after the training rows.", ""]
    if not rows:
        return "\n".join([*lines, "No configuration was evaluated.", ""])
    lines += [markdown_table(rows), ""]
    ordered = sorted(rows, key=lambda r: -_number(r.get("compression_ratio")))
    best = [r for r, b in zip(ordered, pareto(ordered), strict=True) if b]
    lines.append(f"{len(best)} of {len(rows)} configurations are on the Pareto front (*): no "
                 "other has both a higher compression ratio and a higher SNR.")
    lines += ["", "CR: float32 samples over packed codes; CR+model also counts the decoder's "
              "parameters as float32.", ""]
    return "\n".join(lines)
