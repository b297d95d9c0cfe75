"""How a finished run is reported by ``blut run`` and ``blut resume`` (text and JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blut_core.cli import human_bytes, human_seconds

if TYPE_CHECKING:
    from blut_core import RunSummary

#: Exit codes of a finished run (see blut_core.errors for the others).
EXIT_CODES = {"ok": 0, "failed": 1, "refused": 3, "cancelled": 130}


def finish(ctx: click.Context, summary: RunSummary, *, as_json: bool) -> None:
    """Print a finished run (JSON or text) and exit with its code."""
    if as_json:
        from blut_core.cli import echo_json

        echo_json(summary_json(summary))
    else:
        print_summary(summary)
    ctx.exit(EXIT_CODES.get(summary.outcome, 1))


def summary_json(summary: RunSummary) -> dict[str, object]:
    """The ``--json`` shape of a finished run."""
    from blut_core import StageState

    return {
        "run_id": summary.run_id, "recipe": summary.recipe, "outcome": summary.outcome,
        "wall": round(summary.wall, 6), "run_dir": str(summary.run_dir),
        "counts": {s.value: summary.count(s) for s in StageState},
        "stages": [{"name": o.stage, "state": o.state.value,
                    "classification": o.classification.value, "attempts": o.attempt,
                    "duration": round(o.duration, 6), "peak_bytes": o.peak_bytes,
                    "output_hash": o.output_hash, "error": o.error} for o in summary.stages],
    }


def print_summary(summary: RunSummary) -> None:
    """What went wrong, then one line of counts, the run id and its directory."""
    from blut_core import StageState

    ran = summary.count(StageState.OK)
    cached = summary.count(StageState.CACHED)
    failed = sum(summary.count(s) for s in (StageState.FAILED, StageState.UPSTREAM_FAILED,
                                            StageState.REFUSED))
    pruned = summary.count(StageState.PRUNED)
    for o in summary.stages:
        if o.state in (StageState.OK, StageState.CACHED):
            continue
        click.echo(f"  {o.state.value:<16} {o.stage}: {o.error or o.classification.value}")
    parts = [f"{ran} ran", f"{cached} cached", f"{failed} failed"]
    if pruned:
        parts.append(f"{pruned} pruned")
    cancelled = summary.count(StageState.CANCELLED)
    if cancelled:
        parts.append(f"{cancelled} cancelled")
    peak = max((o.peak_bytes or 0 for o in summary.stages), default=0)
    mem = f", peak stage memory {human_bytes(peak)}" if peak else ""
    click.echo(f"{summary.outcome}: {', '.join(parts)} in {human_seconds(summary.wall)}{mem}")
    click.echo(f"run {summary.run_id}")
    click.echo(f"dir {summary.run_dir}")
