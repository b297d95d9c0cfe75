"""What the cockpit shows, read from run directories, the booking ledger and the kernel.

Plain records and readers, no textual: the views only lay these out, and the tests and
``blut tui --check`` read the same records. Every read is tolerant: a run directory that is
being written, a cgroup that just went away or a ledger another process holds never raises.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.model import record_repr

if TYPE_CHECKING:
    from blut_core import App, Booking

#: Run directories read per refresh, newest first (their names start with the start time).
MAX_RUNS = 200
#: Values kept per metric for a sparkline.
MAX_POINTS = 120


@attrs.frozen(kw_only=True)
class RunRow:
    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    recipe: str
    state: str
    started: float | None
    wall: float | None
    counts: Mapping[str, int]
    path: Path
    schedule: str | None = None       # the schedule that fired it


@attrs.frozen(kw_only=True)
class StageRow:
    """One stage of one run, as its latest attempt left it."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str
    state: str
    attempt: int = 0
    inputs: tuple[str, ...] = ()
    depth: int = 0
    estimate: int | None = None
    cap: int | None = None
    live: int | None = None           # bytes its cgroup uses now (running stages)
    peak: int | None = None
    started: float | None = None      # unix time of the latest attempt's start
    duration: float | None = None
    note: str = ""


@attrs.frozen(kw_only=True)
class RunDetail:
    __repr__ = record_repr  # attrs' text, not compiled per class

    run: RunRow
    stages: tuple[StageRow, ...]
    metrics: Mapping[tuple[str, str], tuple[float, ...]]   # (stage, metric) -> values


@attrs.frozen(kw_only=True)
class BookingRow:
    """One booking in the machine-wide ledger, attributed to a run when one of ours made it."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str | None
    pid: int
    stage: str
    booked: int
    outstanding: int
    live: int | None
    peak: int | None
    cgroup: str | None


@attrs.frozen(kw_only=True)
class Machine:
    __repr__ = record_repr  # attrs' text, not compiled per class

    box: int | None
    available: int | None
    ledger: str
    bookings: tuple[BookingRow, ...]
    error: str = ""

    def booked_by_run(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.bookings:
            key = b.run_id or f"pid {b.pid}"
            out[key] = out.get(key, 0) + b.booked
        return out


def runs(app: App, limit: int = MAX_RUNS,
         cache: dict[Path, tuple[tuple[int, int], RunRow]] | None = None) -> list[RunRow]:
    """Live and past runs under ``BLUT_HOME``, newest first.

    With ``cache`` (kept by the caller between refreshes), a run whose status stream has not
    changed since it was last read, and whose driver is not running, is not read again.
    """
    from blut_core.store import STATUS, load_run, read_events

    root = app.settings.runs_dir
    try:
        names = sorted((n for n in os.listdir(root) if not n.startswith(".")), reverse=True)
    except OSError:
        return []
    out = []
    for name in names[:limit]:
        path = root / name
        try:
            st = os.stat(path / STATUS)
        except OSError:
            continue
        stamp = (st.st_mtime_ns, st.st_size)
        known = cache.get(path) if cache is not None else None
        if known is not None and known[0] == stamp and known[1].state != "running":
            out.append(known[1])
            continue
        events = list(read_events(path / STATUS))
        r = load_run(path, events)
        schedule = next((str(e.get("schedule")) for e in events if e.get("event") == "run_scheduled"),
                        None)
        row = RunRow(run_id=r.run_id, recipe=r.recipe, state=r.state, started=r.started,
                     wall=r.wall, counts=dict(r.counts), path=path, schedule=schedule)
        if cache is not None:
            cache[path] = (stamp, row)
        out.append(row)
    out.sort(key=lambda r: (r.started or 0.0, r.run_id), reverse=True)
    return out


def _depths(inputs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def of(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            ups = [u for u in inputs.get(name, ()) if u in inputs and u not in seen]
            depth[name] = 1 + max((of(u, seen | {name}) for u in ups), default=-1)
        return depth[name]

    for name in inputs:
        of(name, frozenset())
    return depth


def usage(cgroup: str | None) -> tuple[int | None, int | None]:
    """``(bytes in use now, peak bytes)`` of a memory cgroup (v1 or v2), ``None`` if unknown."""
    if not cgroup:
        return None, None
    from blut_core.broker import read_int

    now = read_int(os.path.join(cgroup, "memory.usage_in_bytes"))
    if now is None:
        now = read_int(os.path.join(cgroup, "memory.current"))
    peak = read_int(os.path.join(cgroup, "memory.max_usage_in_bytes"))
    if peak is None:
        peak = read_int(os.path.join(cgroup, "memory.peak"))
    return now, peak


def detail(app: App, run: RunRow, machine: Machine | None = None) -> RunDetail:
    """A run's stages (DAG order, depth, latest attempt) and metric series."""
    from blut_core.store import STATUS, load_run, read_events, read_json

    events = list(read_events(run.path / STATUS))
    record = load_run(run.path, events)
    run = attrs.evolve(run, state=record.state, wall=record.wall, counts=dict(record.counts))
    plan = read_json(run.path / "plan.json")
    plan_stages = plan.get("stages") if isinstance(plan, dict) else None
    inputs = {str(s.get("name")): tuple(str(i) for i in s.get("inputs") or ())
              for s in plan_stages or () if isinstance(s, dict)}
    order = list(inputs) or list(record.stages)
    admitted: dict[str, dict[str, Any]] = {}
    started: dict[str, float] = {}
    cgroups = started_cgroups(events)
    metrics: dict[tuple[str, str], list[float]] = {}
    for ev in events:
        name, kind = ev.get("stage"), ev.get("event")
        if not isinstance(name, str):
            continue
        if kind == "stage_admitted":
            admitted[name] = ev
        elif kind == "stage_started" and isinstance(ev.get("t"), int | float):
            started[name] = float(ev["t"])
        elif kind == "stage_metric" and isinstance(ev.get("values"), dict):
            for key, value in ev["values"].items():
                if isinstance(value, int | float) and not isinstance(value, bool) \
                        and math.isfinite(value):
                    series = metrics.setdefault((name, str(key)), [])
                    series.append(float(value))
                    del series[:-MAX_POINTS]
    live = {b.stage: b.live for b in (machine.bookings if machine else ()) if b.run_id == run.run_id}
    depth = _depths(inputs)
    rows = []
    for name in order:
        st = record.stages.get(name, {})
        adm = admitted.get(name, {})
        state = str(st.get("state", "pending"))
        rows.append(StageRow(
            name=name, state=state, attempt=int(st.get("attempts") or 0),
            inputs=inputs.get(name, ()), depth=depth.get(name, 0),
            estimate=_int(adm.get("footprint_bytes")),
            cap=_int(st.get("cap_bytes")) or _int(adm.get("cap_bytes")),
            live=(live.get(name) or usage(cgroups.get(name))[0]) if state == "running" else None,
            peak=_int(st.get("peak_bytes")),
            started=started.get(name), duration=st.get("duration") if st.get("attempts") else None,
            note=str(st.get("error") or "")[:200]))
    return RunDetail(run=run, stages=tuple(rows),
                     metrics={k: tuple(v) for k, v in metrics.items()})


def started_cgroups(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Stage -> the memory cgroup its latest attempt started in (``stage_started``)."""
    out = {}
    for ev in events:
        if ev.get("event") == "stage_started" and isinstance(ev.get("cgroup"), str):
            out[str(ev.get("stage"))] = ev["cgroup"]
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _drivers(app: App) -> dict[int, str]:
    """pid of each live run's driver -> its run id (for attributing ledger bookings)."""
    from blut_core.store import driver_alive, read_json

    out: dict[int, str] = {}
    root = app.settings.runs_dir
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(root), reverse=True)[:MAX_RUNS]:
            path = root / name
            info = read_json(path / "driver.json")
            if isinstance(info, dict) and isinstance(info.get("pid"), int) and driver_alive(path):
                out[info["pid"]] = name
    return out


def machine(app: App) -> Machine:
    """The box, what is available now, and every booking on the ledger."""
    from blut_core import BlutError, Broker
    from blut_core.broker import probe

    snap = probe()
    broker = Broker(app)
    try:
        bookings: Iterable[Booking] = broker.ledger.bookings()
        error = ""
    except (BlutError, OSError) as exc:
        bookings, error = (), getattr(exc, "message", None) or str(exc)
    from blut_core.store import STATUS, read_events

    drivers = _drivers(app)
    started: dict[str, dict[str, str]] = {}
    rows = []
    for b in bookings:
        run_id = drivers.get(b.pid)
        cgroup = b.cgroup
        if cgroup is None and run_id is not None:  # the ledger learns it lazily; the run knows
            if run_id not in started:
                started[run_id] = started_cgroups(read_events(app.settings.runs_dir / run_id / STATUS))
            cgroup = started[run_id].get(b.label)
        now, peak = usage(cgroup)
        rows.append(BookingRow(run_id=run_id, pid=b.pid, stage=b.label, booked=b.bytes,
                               outstanding=b.outstanding(), live=now, peak=peak, cgroup=cgroup))
    return Machine(box=snap.box, available=snap.available, ledger=str(broker.ledger.path),
                   bookings=tuple(rows), error=error)


def log_tail(run: RunRow, stage: StageRow, lines: int = 200) -> list[str]:
    """The last lines of the latest attempt's stdout and stderr of ``stage``."""
    attempts = run.path / "stages" / stage.name / "attempts"
    try:
        latest = max((int(p.name) for p in attempts.iterdir() if p.name.isdigit()), default=None)
    except OSError:
        latest = None
    if latest is None:
        why = {"cached": "it was cached in this run", "pending": "it has not started yet",
               "upstream_failed": "an input failed", "pruned": "its branch was pruned",
               "cancelled": "the run was cancelled first"}.get(stage.state, f"it is {stage.state}")
        return [f"{stage.name}: no attempt ran: {why}"]
    out = [f"{stage.name}, attempt {latest}: {attempts / str(latest)}"]
    for stream in ("stdout", "stderr"):
        body = _tail_text(attempts / str(latest) / f"{stream}.log", 64 * 1024).splitlines()
        out.append(f"── {stream} ──")
        out += body[-lines:] or ["(empty)"]
    return out


def _tail_text(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    return text.split("\n", 1)[-1] if size > limit else text


def since(t: float | None, now: float | None = None) -> str:
    """``t`` as an age: ``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if not t:
        return "-"
    age = max(0.0, (time.time() if now is None else now) - t)
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= span:
            return f"{int(age // span)}{unit} ago"
    return f"{int(age)}s ago"
