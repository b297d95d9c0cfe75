"""How a finished run is reported by ``blut run`` and ``blut resume`` (text and JSON).

A failed stage is shown with the log file of its last attempt and that log's last lines,
so the reason is on screen without opening the run directory. Stages that admission
right-sized, or that waited for memory, are named with what was changed and how long they
waited (from the run's ``stage_admitted`` events).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from blut_core.cli import human_bytes, human_seconds

if TYPE_CHECKING:
    from blut_core import RunSummary, StageOutcome

#: Exit codes of a finished run (see blut_core.errors for the others).
EXIT_CODES = {"ok": 0, "failed": 1, "refused": 3, "cancelled": 130}
#: Failed stages whose log is shown, and lines shown of each.
LOGS_SHOWN = 3
LOG_LINES = 8
#: A wait for memory shorter than this is not reported (as in progress lines).
WAIT_SHOWN = 1.0


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

    admission = admissions(summary.run_dir)
    return {
        "run_id": summary.run_id, "recipe": summary.recipe, "outcome": summary.outcome,
        "wall": round(summary.wall, 6), "run_dir": str(summary.run_dir),
        "counts": {s.value: summary.count(s) for s in StageState},
        "stages": [{"name": o.stage, "state": o.state.value,
                    "classification": o.classification.value, "attempts": o.attempt,
                    "duration": round(o.duration, 6), "peak_bytes": o.peak_bytes,
                    "output_hash": o.output_hash, "error": o.error,
                    "log": _path_or_none(log_of(summary.run_dir, o)),
                    "right_sized": admission.get(o.stage, Admitted()).right_sized,
                    "waited": round(admission.get(o.stage, Admitted()).waited, 6)}
                   for o in summary.stages],
    }


class Admitted:
    """What admission did to one stage over its attempts: right-sized it (why), how long it
    waited for memory in all."""

    __slots__ = ("right_sized", "waited")

    def __init__(self) -> None:
        self.right_sized: str | None = None
        self.waited = 0.0


def admissions(run_dir: Path) -> dict[str, Admitted]:
    """Per stage, from the run's ``stage_admitted`` events (empty when there are none)."""
    from blut_core.store import STATUS, read_events

    out: dict[str, Admitted] = {}
    for ev in read_events(Path(run_dir) / STATUS):
        if ev.get("event") != "stage_admitted" or not isinstance(ev.get("stage"), str):
            continue
        seen = out.setdefault(ev["stage"], Admitted())
        if ev.get("decision") == "right_size" and ev.get("reason"):
            seen.right_sized = str(ev["reason"])
        waited = ev.get("waited")
        if isinstance(waited, int | float) and waited > 0:
            seen.waited += float(waited)
    return out


def _path_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


def log_of(run_dir: Path, o: StageOutcome) -> Path | None:
    """The log that says why a stage's last attempt ended: its stderr, else its stdout when
    only that has text; ``None`` for a stage that never ran."""
    from blut_core.store import RunDir

    if o.attempt < 1:
        return None
    adir = RunDir(run_dir).attempt_dir(o.stage, o.attempt)
    stderr, stdout = adir / "stderr.log", adir / "stdout.log"
    if not stderr.exists() and not stdout.exists():
        return None
    return stdout if _size(stderr) == 0 and _size(stdout) > 0 else stderr


def last_lines(path: Path, n: int = LOG_LINES) -> list[str]:
    """The last ``n`` non-empty lines of a log (read from its last 16 KiB)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, _size(path) - 16384))
            text = fh.read().decode(errors="replace")
    except OSError:
        return []
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()][-n:]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def print_summary(summary: RunSummary) -> None:
    """What went wrong, then one line of counts, the run id and its directory."""
    from blut_core import StageState

    ran = summary.count(StageState.OK)
    cached = summary.count(StageState.CACHED)
    failed = sum(summary.count(s) for s in (StageState.FAILED, StageState.UPSTREAM_FAILED,
                                            StageState.REFUSED))
    pruned = summary.count(StageState.PRUNED)
    shown = 0
    for o in summary.stages:
        if o.state in (StageState.OK, StageState.CACHED):
            continue
        click.echo(f"  {o.state.value:<16} {o.stage}: {o.error or o.classification.value}")
        log = log_of(summary.run_dir, o) if o.state is StageState.FAILED else None
        if log is not None and shown < LOGS_SHOWN:
            shown += 1
            click.echo(f"  {'':<16} log {log}")
            for line in last_lines(log):
                click.echo(f"  {'':<16} | {line[:200]}")
    failed_logs = [o.stage for o in summary.stages if o.state is StageState.FAILED]
    if failed_logs:
        more = f" ({len(failed_logs) - shown} more failed stages not shown)" \
            if len(failed_logs) > shown else ""
        click.echo(f"  whole log: blut logs {summary.run_id} {failed_logs[0]}{more}")
    for name, seen in admissions(summary.run_dir).items():
        if seen.right_sized:
            click.echo(f"  {'right-sized':<16} {name}: {seen.right_sized}")
        if seen.waited >= WAIT_SHOWN:
            click.echo(f"  {'waited':<16} {name}: {human_seconds(seen.waited)} for memory")
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
    click.echo(f"see blut runs show {summary.run_id}   (stages, attempts, caps and peaks)")
    click.echo(f"    blut runs report {summary.run_id} (an HTML page: timeline, memory, metrics)")
