"""Live progress of a run: what runs, what waits (and for what), what is done, memory.

The executor hands a :class:`Snapshot` to a progress sink a few times a second. Two sinks:
:class:`LiveTable` (a rich live table on a terminal) and :class:`LogLines` (one plain line
per change, for logs and pipes). Both write to stderr: stdout is for results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

import attrs

from blut_core.model.sizes import format_size as human_bytes
from blut_core.model.sizes import human_seconds

if TYPE_CHECKING:
    from rich.live import Live

    from blut_core.model.outcome import StageOutcome
    from blut_core.model.stage import Stage
    from blut_core.run.attempt import Attempt
    from blut_core.run.scheduling import PolicyView


@attrs.frozen(kw_only=True)
class StageView:
    name: str
    state: str                 # pending, waiting, running, ok, cached, failed, pruned...
    elapsed: float | None = None
    footprint: int | None = None
    cap: int | None = None
    peak: int | None = None
    note: str = ""


@attrs.frozen(kw_only=True)
class Snapshot:
    run_id: str
    stages: tuple[StageView, ...]
    booked: int | None = None       # bytes this run has booked
    available: int | None = None    # bytes the machine has available now
    box: int | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stages:
            out[s.state] = out.get(s.state, 0) + 1
        return out


class ProgressSink(Protocol):
    def update(self, snapshot: Snapshot) -> None: ...

    def close(self, snapshot: Snapshot) -> None: ...


_ORDER = ("running", "waiting", "retrying", "failed", "refused", "pruned", "cancelled",
          "upstream_failed", "ok", "cached", "pending")
_STYLE = {"running": "bold cyan", "waiting": "yellow", "retrying": "yellow", "ok": "green",
          "cached": "dim green", "failed": "bold red", "refused": "bold red",
          "pruned": "magenta", "cancelled": "red", "upstream_failed": "red", "pending": "dim"}


def headline(snap: Snapshot) -> str:
    counts = snap.counts()
    parts = [f"{counts.get(k, 0)} {k}" for k in ("running", "waiting", "ok", "cached", "failed",
                                                 "pruned") if counts.get(k)]
    mem = ""
    if snap.booked is not None and snap.available is not None:
        mem = f" | memory booked {human_bytes(snap.booked)}, available {human_bytes(snap.available)}"
    return f"run {snap.run_id}: {', '.join(parts) or 'starting'}{mem}"


class LiveTable:
    """A rich live table on the terminal (stderr), redrawn in place."""

    def __init__(self, stream: IO[str] | None = None, max_rows: int = 20) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr)
        self.max_rows = max_rows
        self.live: Live | None = None

    def _render(self, snap: Snapshot) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(expand=False)
        for col in ("stage", "state", "time", "memory", "note"):
            table.add_column(col)
        rank = {s: i for i, s in enumerate(_ORDER)}
        rows = sorted(snap.stages, key=lambda s: rank.get(s.state, 99))
        shown = rows[: self.max_rows]
        for s in shown:
            mem = human_bytes(s.peak) if s.peak else (
                f"{human_bytes(s.footprint)} booked" if s.footprint else "")
            table.add_row(s.name, f"[{_STYLE.get(s.state, '')}]{s.state}",
                          human_seconds(s.elapsed) if s.elapsed is not None else "", mem, s.note)
        if len(rows) > len(shown):
            table.add_row(f"… {len(rows) - len(shown)} more", "", "", "", "")
        return Group(Text(headline(snap), style="bold"), table)

    def update(self, snapshot: Snapshot) -> None:
        if self.live is None:
            from rich.live import Live

            self.live = Live(self._render(snapshot), console=self.console,
                             refresh_per_second=4, transient=True)
            self.live.start()
        else:
            self.live.update(self._render(snapshot))

    def close(self, snapshot: Snapshot) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class LogLines:
    """One plain line per change of a stage's state (for pipes, files and CI logs)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.seen: dict[str, tuple[str, str]] = {}

    def update(self, snapshot: Snapshot) -> None:
        for s in snapshot.stages:
            key = (s.state, s.note if s.state == "waiting" else "")
            if self.seen.get(s.name) == key or s.state == "pending":
                continue
            self.seen[s.name] = key
            extra = []
            if s.state == "running" and s.cap:
                extra.append(f"cap {human_bytes(s.cap)}")
            if s.state in ("ok", "failed") and s.elapsed is not None:
                extra.append(human_seconds(s.elapsed))
            if s.peak:
                extra.append(f"peak {human_bytes(s.peak)}")
            if s.note:
                extra.append(s.note)
            stamp = time.strftime("%H:%M:%S")
            tail = f" ({'; '.join(extra)})" if extra else ""
            print(f"{stamp} {s.state:<9} {s.name}{tail}", file=self.stream, flush=True)

    def close(self, snapshot: Snapshot) -> None:
        self.update(snapshot)


def sink_for(stdout_is_tty: bool, *, enabled: bool = True) -> ProgressSink | None:
    """A live table on a terminal, plain lines otherwise; ``None`` when disabled."""
    if not enabled:
        return None
    return LiveTable() if stdout_is_tty and sys.stderr.isatty() else LogLines()


def view_of(name: str, state: str, *, started: float | None = None, now: float | None = None,
            info: Mapping[str, Any] | None = None) -> StageView:
    info = info or {}
    elapsed = None if started is None else (now or time.monotonic()) - started
    return StageView(name=name, state=state, elapsed=info.get("duration", elapsed),
                     footprint=info.get("footprint"), cap=info.get("cap"),
                     peak=info.get("peak"), note=str(info.get("note") or ""))


def snapshot_of(run_id: str, order: Sequence[Stage], outcomes: Mapping[str, StageOutcome],
                running: Mapping[str, Attempt], not_before: Mapping[str, float],
                view: PolicyView) -> Snapshot:
    """A snapshot of a run from the executor's state and its policy's view."""
    now = time.monotonic()
    stages = []
    for s in order:
        o = outcomes.get(s.name)
        a = running.get(s.name)
        if o is not None:
            stages.append(view_of(s.name, o.state.value, info={
                "duration": o.duration, "peak": o.peak_bytes,
                "note": "" if o.ok else (o.error or o.classification.value)[:80]}))
        elif a is not None:
            stages.append(view_of(s.name, "running", started=a.started, now=now,
                                  info={"cap": a.cap, "footprint": a.footprint}))
        elif s.name in view.waiting:
            stages.append(view_of(s.name, "waiting", info={"note": view.waiting[s.name]}))
        elif s.name in not_before:
            stages.append(view_of(s.name, "retrying"))
        else:
            stages.append(view_of(s.name, "pending"))
    return Snapshot(run_id=run_id, stages=tuple(stages), booked=view.booked,
                    available=view.available, box=view.box)
