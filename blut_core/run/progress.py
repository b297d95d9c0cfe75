"""Live progress of a run: what each stage does and why, and the memory it holds.

Two inputs feed a progress sink. The executor's status events, as they are written
(:func:`observed` tees them to the sink's ``event``): every state change, with its history,
such as an OOM kill and the retry with a raised cap. And a :class:`Snapshot` a few times a
second, also while nothing runs: elapsed times, the memory each running stage uses against
its cap, and why a stage waits (what it needs, what is free, what which runs have booked).

Two sinks, both on stderr (stdout is for results): :class:`LiveTable`, a rich table redrawn
in place whose last frame stays on screen, and :class:`LogLines`, one plain line per state
change (for pipes, files and CI logs), written whole and in event order, so structured log
lines never land inside or ahead of them. A long wait or a long stage gets a reminder line
every minute: the plain output never goes silent either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import attrs

from blut_core.model.reprs import record_repr
from blut_core.model.sizes import format_size as human_bytes
from blut_core.model.sizes import human_seconds
from blut_core.run.stage_history import StageHistory
from blut_core.store.rundir import StatusLog

if TYPE_CHECKING:
    from rich.live import Live

    from blut_core.model.outcome import StageOutcome
    from blut_core.model.stage import Stage
    from blut_core.run.attempt import Attempt
    from blut_core.run.scheduling import BookedRun, PolicyView


@attrs.frozen(kw_only=True)
class StageView:
    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str
    state: str                 # pending, waiting, running, retrying, ok, cached, failed, pruned...
    elapsed: float | None = None
    footprint: int | None = None
    cap: int | None = None
    peak: int | None = None
    note: str = ""
    attempt: int = 0
    max_attempts: int = 1
    live: int | None = None    # bytes its cgroup holds now (running)
    retry_in: float | None = None  # seconds until a retry may start (retrying)


@attrs.frozen(kw_only=True)
class Snapshot:
    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    stages: tuple[StageView, ...]
    booked: int | None = None       # bytes this run has booked
    available: int | None = None    # bytes the machine has available now
    box: int | None = None
    floor: int | None = None        # bytes always left free
    by_run: tuple[BookedRun, ...] = ()  # what each run on the machine has booked (while waiting)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stages:
            out[s.state] = out.get(s.state, 0) + 1
        return out


class ProgressSink(Protocol):
    """Where progress goes. A sink may also take status events: ``event(record)``."""

    def update(self, snapshot: Snapshot) -> None: ...

    def close(self, snapshot: Snapshot) -> None: ...


_ORDER = ("running", "waiting", "retrying", "failed", "refused", "pruned", "cancelled",
          "upstream_failed", "pending", "ok", "cached")
_STYLE = {"running": "bold cyan", "waiting": "yellow", "retrying": "yellow", "ok": "green",
          "cached": "dim green", "failed": "bold red", "refused": "bold red",
          "pruned": "magenta", "cancelled": "red", "upstream_failed": "red", "pending": "dim"}
#: Seconds between the reminder lines of a stage that runs or waits long (plain lines).
REMIND_EVERY = 60.0


def headline(snap: Snapshot) -> str:
    """``run R: 2 running, 1 waiting, 5 ok``."""
    counts = snap.counts()
    parts = [f"{counts.get(k, 0)} {k}" for k in ("running", "waiting", "retrying", "ok", "cached",
                                                 "failed", "pruned", "pending") if counts.get(k)]
    return f"run {snap.run_id}: {', '.join(parts) or 'starting'}"


def memory_line(snap: Snapshot) -> str:
    """What this run booked, what is available, the box, and what other runs booked."""
    parts = []
    if snap.booked is not None and snap.available is not None:
        parts.append(f"memory booked {human_bytes(snap.booked)}, "
                     f"available {human_bytes(snap.available)}")
    if snap.box:
        parts.append(f"box {human_bytes(snap.box)}")
    if snap.floor:
        parts.append(f"{human_bytes(snap.floor)} always left free")
    others = [r for r in snap.by_run if not r.own]
    if others:
        parts.append("booked by other runs: " + booked_text(others))
    return " · ".join(parts)


def booked_text(runs: Sequence[BookedRun], limit: int = 3) -> str:
    """``blut run a:b (pid 42) 2.0 GiB for train, eval; …``."""
    shown = []
    for r in runs[:limit]:
        stages = ", ".join(r.stages[:3]) + (f" +{len(r.stages) - 3}" if len(r.stages) > 3 else "")
        who = "this run" if r.own else f"{r.command} (pid {r.pid})"
        shown.append(f"{who} {human_bytes(r.bytes)}" + (f" for {stages}" if stages else ""))
    more = f"; {len(runs) - limit} more" if len(runs) > limit else ""
    return "; ".join(shown) + more


def _write(stream: IO[str], text: str) -> bool:
    """Write ``text`` in one call; ``False`` when the stream is gone (a closed pipe)."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        return False
    return True


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (rich's live display swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _logs_through_live_display() -> None:
    """Make structured log lines go through ``sys.stderr`` as it is when they are written, so
    that while the live table is on screen they are printed above it, not through it.

    When structlog is not loaded yet, nothing is needed: it is configured on first use, with
    the ``sys.stderr`` of that moment.
    """
    structlog = sys.modules.get("structlog")
    if structlog is not None and structlog.is_configured():
        structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()))


class LiveTable:
    """A rich live table on the terminal (stderr), redrawn in place; the last frame stays."""

    def __init__(self, stream: IO[str] | None = None, max_rows: int = 20) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr)
        self.max_rows = max_rows
        self.live: Live | None = None
        self.history = StageHistory()

    def event(self, record: Mapping[str, Any]) -> None:
        self.history.take(record)

    def _render(self, snap: Snapshot) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(expand=False)
        for col in ("stage", "state", "time", "memory", "note"):
            table.add_column(col, overflow="fold")
        rank = {s: i for i, s in enumerate(_ORDER)}
        rows = sorted(snap.stages, key=lambda s: rank.get(s.state, 99))
        shown = rows[: self.max_rows]
        for s in shown:
            table.add_row(s.name, Text(self.history.label(s), style=_STYLE.get(s.state, "")),
                          self.history.time(s), self.history.memory(s), self.history.note(s))
        if len(rows) > len(shown):
            rest: dict[str, int] = {}
            for s in rows[len(shown):]:
                rest[s.state] = rest.get(s.state, 0) + 1
            table.add_row(f"… {len(rows) - len(shown)} more", "", "", "",
                          ", ".join(f"{n} {k}" for k, n in rest.items()))
        lines: list[Any] = [Text(headline(snap), style="bold")]
        mem = memory_line(snap)
        if mem:
            lines.append(Text(mem))
        return Group(*lines, table)

    def update(self, snapshot: Snapshot) -> None:
        if self.live is None:
            from rich.live import Live

            self.live = Live(self._render(snapshot), console=self.console,
                             refresh_per_second=4, transient=False)
            self.live.start()
            _logs_through_live_display()
        else:
            self.live.update(self._render(snapshot))

    def close(self, snapshot: Snapshot) -> None:
        """Draw the final state and leave it on screen."""
        if self.live is None:
            self.console.print(self._render(snapshot))
            return
        self.live.update(self._render(snapshot), refresh=True)
        self.live.stop()
        self.live = None


class LogLines:
    """One plain line per change of a stage's state (for pipes, files and CI logs).

    Fed events (see :func:`observed`), it prints each as it happens: none is dropped, and a
    line is written before the log line the executor writes about the same change. Without
    events it prints the changes it sees between snapshots.
    """

    def __init__(self, stream: IO[str] | None = None, *, remind_every: float = REMIND_EVERY) -> None:
        self.stream = stream or sys.stderr
        self.remind_every = remind_every
        self.seen: dict[str, str] = {}                # stage -> state last printed (no events)
        self.history = StageHistory()
        self.since: dict[str, float] = {}            # stage -> when it was first seen waiting
        self.reminded: dict[str, float] = {}         # stage -> when its last line was written
        self.gone = False                            # the stream is closed: stop writing

    def _line(self, state: str, name: str, extra: Sequence[str], at: float | None = None) -> None:
        if self.gone:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(at))
        tail = f" ({'; '.join(e for e in extra if e)})" if any(extra) else ""
        self.gone = not _write(self.stream, f"{stamp} {state:<9} {name}{tail}\n")
        self.reminded[name] = time.monotonic()

    def event(self, record: Mapping[str, Any]) -> None:
        kind, name = record.get("event"), str(record.get("stage", ""))
        self.history.take(record)
        at = record.get("t")
        if kind == "stage_started":
            self._line("running", name, self.history.started_details(name), at)
        elif kind == "stage_finished":
            self._finished(record)
        elif kind == "stage_retrying":
            self._line("retrying", name, [self.history.retry_text(name)], at)
        elif kind == "stage_skipped":
            self._line("cached", name, [], at)
        elif kind in ("stage_soft_timeout", "stage_killed"):
            self._line("stopping", name, [self.history.stopping(name)], at)

    def _finished(self, record: Mapping[str, Any]) -> None:
        name, state = str(record.get("stage", "")), str(record.get("state", ""))
        self._line(state, name, self.history.finished_details(name, record), record.get("t"))

    def update(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        for s in snapshot.stages:
            if s.state == "waiting":  # no event says so: the first snapshot, then reminders
                first = s.name not in self.since
                since = self.since.setdefault(s.name, now)
                if first:
                    self._line("waiting", s.name, [s.note])
                elif now - self.reminded.get(s.name, since) >= self.remind_every:
                    self._line("waiting", s.name, [f"for {human_seconds(now - since)}", s.note])
                continue
            self.since.pop(s.name, None)
            if not self.history.events:
                self._from_snapshot(s)
            elif s.state == "running" and (s.elapsed or 0.0) >= self.remind_every and \
                    now - self.reminded.get(s.name, now) >= self.remind_every:
                self._line("running", s.name, [f"for {human_seconds(s.elapsed)}",
                                               self.history.memory(s), self.history.note(s)])

    def _from_snapshot(self, s: StageView) -> None:
        """Without events: a line when a stage is seen in a new state."""
        if self.seen.get(s.name) == s.state or s.state == "pending":
            return
        self.seen[s.name] = s.state
        extra = []
        if s.state == "running" and s.cap:
            extra.append(f"cap {human_bytes(s.cap)}")
        if s.state in ("ok", "failed") and s.elapsed is not None:
            extra.append(human_seconds(s.elapsed))
        if s.peak:
            extra.append(f"peak {human_bytes(s.peak)}")
        if s.note:
            extra.append(s.note)
        self._line(s.state, s.name, extra)

    def close(self, snapshot: Snapshot) -> None:
        self.update(snapshot)


def sink_for(stdout_is_tty: bool, *, enabled: bool = True) -> ProgressSink | None:
    """A live table on a terminal, plain lines otherwise; ``None`` when disabled."""
    if not enabled:
        return None
    return LiveTable() if stdout_is_tty and sys.stderr.isatty() else LogLines()


class _Observed(StatusLog):
    """A status stream that also hands every event it writes to a progress sink."""

    def __init__(self, inner: StatusLog, listener: Callable[[Mapping[str, Any]], None]) -> None:
        self.inner = inner
        self.path = inner.path
        self.listener: Callable[[Mapping[str, Any]], None] | None = listener

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        record = self.inner.append(event, **fields)
        if self.listener is not None:
            try:
                self.listener(record)
            except Exception as exc:  # a broken display must not fail the run: it goes quiet
                self.listener = None
                from blut_core.host.log import get_logger

                get_logger().warning("progress_failed", error=repr(exc))
        return record

    def batch(self) -> Any:
        return self.inner.batch()

    def flush(self) -> None:
        self.inner.flush()

    def sync(self) -> None:
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()


def observed(status: StatusLog, sink: object | None) -> StatusLog:
    """``status``, teeing its events to ``sink.event`` when the sink takes events."""
    listener = getattr(sink, "event", None)
    return status if listener is None else _Observed(status, listener)


def live_bytes(cgroup: str | None) -> int | None:
    """What the cgroup at ``cgroup`` holds now (``memory.current``, v1 ``usage_in_bytes``)."""
    if not cgroup:
        return None
    from blut_core.broker.cgroups import read_int

    base = Path(cgroup)
    found = read_int(str(base / "memory.current"))
    return found if found is not None else read_int(str(base / "memory.usage_in_bytes"))


def view_of(name: str, state: str, *, started: float | None = None, now: float | None = None,
            info: Mapping[str, Any] | None = None) -> StageView:
    info = info or {}
    elapsed = None if started is None else (now or time.monotonic()) - started
    return StageView(name=name, state=state, elapsed=info.get("duration", elapsed),
                     footprint=info.get("footprint"), cap=info.get("cap"),
                     peak=info.get("peak"), note=str(info.get("note") or ""),
                     attempt=int(info.get("attempt") or 0),
                     max_attempts=int(info.get("max_attempts") or 1), live=info.get("live"),
                     retry_in=info.get("retry_in"))


def _waiting_note(reason: str, view: PolicyView) -> str:
    if not view.by_run:
        return reason
    return f"{reason}; booked: {booked_text(view.by_run)}"


def _pending_note(s: Stage, outcomes: Mapping[str, StageOutcome], running: int,
                  jobs: int | None) -> str:
    waits_for = [i for i in s.inputs if i not in outcomes or not outcomes[i].ok]
    if waits_for:
        more = f" +{len(waits_for) - 4}" if len(waits_for) > 4 else ""
        return "after " + ", ".join(waits_for[:4]) + more
    if jobs and running >= jobs:
        return f"ready: all {jobs} job slots in use"
    return "ready"


def snapshot_of(run_id: str, order: Sequence[Stage], outcomes: Mapping[str, StageOutcome],
                running: Mapping[str, Attempt], not_before: Mapping[str, float],
                view: PolicyView) -> Snapshot:
    """A snapshot of a run from the executor's state and its policy's view."""
    now = time.monotonic()
    wall = time.time()
    stages = []
    for s in order:
        o = outcomes.get(s.name)
        a = running.get(s.name)
        most = s.retry.max_attempts
        if o is not None:
            note = "result from the cache" if o.state.value == "cached" else \
                "" if o.ok else (o.error or o.classification.value)[:300]
            stages.append(view_of(s.name, o.state.value, info={
                "duration": o.duration, "peak": o.peak_bytes, "cap": o.cap_bytes, "note": note,
                "attempt": o.attempt, "max_attempts": most}))
        elif a is not None:
            note = ""
            if a.term_sent is not None:
                note = "soft timeout: asked to stop (SIGTERM)"
            elif a.forced is not None:
                note = f"stopping: {a.error or a.forced.value}"
            stages.append(view_of(s.name, "running", started=a.started, now=now, info={
                "cap": a.cap, "footprint": a.footprint, "attempt": a.number,
                "max_attempts": most, "live": live_bytes(a.handle.cgroup), "note": note}))
        elif s.name in view.waiting:
            stages.append(view_of(s.name, "waiting",
                                  info={"note": _waiting_note(view.waiting[s.name], view)}))
        elif s.name in not_before:
            left = max(0.0, not_before[s.name] - wall)
            stages.append(view_of(s.name, "retrying", info={
                "retry_in": left, "max_attempts": most,
                "note": f"retry in {human_seconds(left)}" if left else "retry next"}))
        else:
            stages.append(view_of(s.name, "pending", info={
                "note": _pending_note(s, outcomes, len(running), view.jobs)}))
    return Snapshot(run_id=run_id, stages=tuple(stages), booked=view.booked,
                    available=view.available, box=view.box, floor=view.floor, by_run=view.by_run)
