"""A run's status stream read as a timeline: attempts, memory over time, metric curves.

Everything here comes from the run directory (``status.jsonl``, ``plan.json``,
``params.json``, ``provenance.json``): the report shows what the run recorded, nothing
estimated after the fact. Times are seconds since the run started.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from blut_core.model import record_repr

#: How an attempt ended, as the Gantt chart colours it.
OUTCOMES = ("ok", "oom", "retried", "pruned", "cached", "failed", "cancelled", "running")


@attrs.define(kw_only=True)
class AttemptSpan:
    """One attempt of one stage (or a cached skip, attempt 0), as the run recorded it."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: str
    attempt: int
    outcome: str = "running"
    admitted: float | None = None    # when admission let it start
    waited: float = 0.0              # seconds admission held it back before that
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    footprint: int | None = None     # the estimate booked for it
    cap: int | None = None           # the kernel cap it ran under
    peak: int | None = None          # the kernel's measured peak
    source: str | None = None        # where the estimate came from (model, measured, ...)
    classification: str | None = None
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.start is not None


@attrs.frozen(kw_only=True)
class MachinePoint:
    """What the machine looked like when admission decided about one attempt."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    t: float
    available: int
    booked_elsewhere: int     # bytes other stages (this run's and other runs') held back
    box: int | None


@attrs.frozen(kw_only=True)
class MetricCurve:
    """The values one stage reported for one metric, per attempt: ``(x, value)`` points."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: str
    name: str
    by_step: bool                                   # x is the step (else seconds)
    points: Mapping[int, tuple[tuple[float, float], ...]]  # attempt -> points

    @property
    def last(self) -> float:
        attempt = max(self.points)
        return self.points[attempt][-1][1]


@attrs.frozen(kw_only=True)
class Timeline:
    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    recipe: str
    state: str
    started: float | None            # unix time
    wall: float | None
    span: float                      # seconds from start to the last event
    stages: tuple[str, ...]          # plan order
    inputs: Mapping[str, tuple[str, ...]]
    attempts: tuple[AttemptSpan, ...]
    settled: Mapping[str, str]       # stage -> how it ended without an attempt of its own
    machine: tuple[MachinePoint, ...]
    metrics: tuple[MetricCurve, ...]
    params: Any
    provenance: Mapping[str, Any]
    schedule: str | None = None      # the schedule that fired the run (``run_scheduled``)

    def booked(self) -> list[tuple[float, int]]:
        """This run's bookings over time, as steps ``(t, bytes from t on)``."""
        return _steps((a.admitted, a.end if a.end is not None else self.span, a.footprint)
                      for a in self.attempts if a.admitted is not None)

    def measured(self) -> list[tuple[float, int]]:
        """The kernel peaks of this run's attempts, each held over its attempt, as steps.

        The run records each attempt's peak, not its use over time: this is an upper bound
        of what the run's stages used at any moment.
        """
        return _steps((a.start, a.end if a.end is not None else self.span, a.peak)
                      for a in self.attempts if a.start is not None)


def _steps(spans: Iterable[tuple[float | None, float, int | None]]) -> list[tuple[float, int]]:
    deltas: dict[float, int] = {}
    for start, end, nbytes in spans:
        if start is None or not nbytes:
            continue
        deltas[start] = deltas.get(start, 0) + nbytes
        deltas[max(end, start)] = deltas.get(max(end, start), 0) - nbytes
    level, out = 0, [(0.0, 0)]
    for t in sorted(deltas):
        level += deltas[t]
        out.append((t, max(0, level)))
    return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _outcome(state: str, classification: str | None) -> str:
    if classification == "oom":
        return "oom"
    if state in ("ok", "pruned", "cached", "cancelled"):
        return state
    return "failed"


def load(run_dir: Path, *, now: float | None = None) -> Timeline:
    """The timeline of the run in ``run_dir`` (a running run's, up to ``now``)."""
    import time

    from blut_core.store import STATUS, load_run, read_events, read_json

    events = list(read_events(run_dir / STATUS))
    state = load_run(run_dir, events).state
    return build(run_dir, events, plan=read_json(run_dir / "plan.json"),
                 params=read_json(run_dir / "params.json"),
                 provenance=read_json(run_dir / "provenance.json"), state=state,
                 now=time.time() if now is None else now)


def build(run_dir: Path, events: list[dict[str, Any]], *, plan: Any, params: Any,
          provenance: Any, state: str, now: float | None = None) -> Timeline:
    """The timeline of the run in ``run_dir`` from its already-read ``events``."""
    t0: float | None = None
    recipe, wall = "?", None
    schedule: str | None = None
    order: list[str] = []
    spans: dict[tuple[str, int], AttemptSpan] = {}
    settled: dict[str, str] = {}
    machine: list[MachinePoint] = []
    raw_metrics: dict[tuple[str, str], dict[int, list[tuple[float | None, float, float]]]] = {}
    last_t = 0.0

    def rel(ev: Mapping[str, Any]) -> float:
        t = _num(ev.get("t"))
        return 0.0 if t is None or t0 is None else max(0.0, t - t0)

    def span(ev: Mapping[str, Any]) -> AttemptSpan:
        key = (str(ev.get("stage")), _int(ev.get("attempt")) or 0)
        if key not in spans:
            spans[key] = AttemptSpan(stage=key[0], attempt=key[1])
        return spans[key]

    for ev in events:
        kind = ev.get("event")
        if kind == "run_started" and t0 is None:
            t0 = _num(ev.get("t"))
            recipe = str(ev.get("recipe", recipe))
            order = [str(s) for s in ev.get("stages") or ()]
        if t0 is None:
            continue
        t = rel(ev)
        last_t = max(last_t, t)
        name = ev.get("stage")
        if kind == "run_finished":
            wall = _num(ev.get("wall"))
        elif kind == "run_scheduled" and isinstance(ev.get("schedule"), str):
            schedule = ev["schedule"]
        elif kind == "run_resumed":
            wall = None
        elif kind == "stage_admitted" and name:
            a = span(ev)
            a.admitted, a.waited = t, _num(ev.get("waited")) or 0.0
            a.footprint, a.cap = _int(ev.get("footprint_bytes")), _int(ev.get("cap_bytes"))
            a.source = ev.get("source") if isinstance(ev.get("source"), str) else None
            available = _int(ev.get("available_bytes"))
            if available is not None:
                machine.append(MachinePoint(t=t, available=available,
                                            booked_elsewhere=_int(ev.get("booked_bytes")) or 0,
                                            box=_int(ev.get("box_bytes"))))
        elif kind == "stage_started" and name:
            a = span(ev)
            a.start = t
            a.cap = _int(ev.get("cap_bytes")) or a.cap
        elif kind == "stage_skipped" and name:
            a = span({**ev, "attempt": 0})
            a.outcome, a.start, a.end, a.duration = "cached", t, t, 0.0
        elif kind == "stage_retrying" and name:
            previous = spans.get((str(name), (_int(ev.get("attempt")) or 1) - 1))
            if previous is not None and previous.outcome != "oom":
                previous.outcome = "retried"
        elif kind == "stage_finished" and name:
            found = spans.get((str(name), _int(ev.get("attempt")) or 0))
            if found is not None and found.start is None and found.admitted is not None:
                found.start = found.admitted  # admitted, but the launcher refused to start it
            if found is None or found.start is None or found.end is not None:
                settled[str(name)] = str(ev.get("state"))  # ended without an attempt of its own
                continue
            a = found
            cls = ev.get("classification") if isinstance(ev.get("classification"), str) else None
            a.outcome = _outcome(str(ev.get("state")), cls)
            a.classification, a.end = cls, t
            a.duration = _num(ev.get("duration"))
            a.peak = _int(ev.get("peak_bytes"))
            a.cap = _int(ev.get("cap_bytes")) or a.cap
            a.error = ev.get("error") if isinstance(ev.get("error"), str) else None
            settled.pop(str(name), None)
        elif kind == "stage_metric" and name:
            values = ev.get("values")
            step = _num(ev.get("step"))
            for key, value in (values.items() if isinstance(values, dict) else ()):
                v = _num(value)
                if v is not None:
                    curve = raw_metrics.setdefault((str(name), str(key)), {})
                    curve.setdefault(_int(ev.get("attempt")) or 1, []).append((step, t, v))
    if state == "running" and now is not None and t0 is not None:
        last_t = max(last_t, now - t0)
    for a in spans.values():
        if a.start is not None and a.end is None and state != "running":
            a.end = last_t  # the driver is gone: the attempt ended with it, unrecorded
    plan_stages = plan.get("stages") if isinstance(plan, dict) else None
    inputs = {str(s.get("name")): tuple(str(i) for i in s.get("inputs") or ())
              for s in plan_stages or () if isinstance(s, dict)}
    if not order:
        order = list(inputs)
    rank = {name: i for i, name in enumerate(order)}
    attempts = sorted(spans.values(), key=lambda a: (rank.get(a.stage, len(rank)), a.stage, a.attempt))
    return Timeline(
        run_id=run_dir.name, recipe=recipe, state=state, started=t0, wall=wall,
        span=max(last_t, wall or 0.0), stages=tuple(order), inputs=inputs,
        attempts=tuple(attempts), settled=settled, machine=tuple(machine),
        metrics=tuple(_curves(raw_metrics)), params=params,
        provenance=provenance if isinstance(provenance, dict) else {}, schedule=schedule)


def _curves(raw: Mapping[tuple[str, str], Mapping[int, list[tuple[float | None, float, float]]]]
            ) -> Iterable[MetricCurve]:
    for (stage, name), per_attempt in raw.items():
        by_step = all(step is not None for pts in per_attempt.values() for step, _, _ in pts)
        points = {n: tuple(((step if by_step and step is not None else t), v) for step, t, v in pts)
                  for n, pts in sorted(per_attempt.items())}
        yield MetricCurve(stage=stage, name=name, by_step=by_step, points=points)
