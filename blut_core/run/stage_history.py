"""What each stage went through in a run, taken from its status events, in words for progress.

:class:`StageHistory` keeps, per stage, the last admission, the attempt that runs, how the
previous attempt ended (an OOM kill at which cap, a timeout, an error), the retry announced,
the last metric and whether it is being stopped. Progress sinks ask it for the words of a
table cell or a plain line: "attempt 2 after an OOM kill at its 256.0 MiB cap; cap 256.0 MiB
→ 320.0 MiB". Without events (a sink fed snapshots only) it words what a snapshot says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.model.reprs import record_repr
from blut_core.model.sizes import format_size as human_bytes
from blut_core.model.sizes import human_seconds

if TYPE_CHECKING:
    from blut_core.run.progress import StageView

#: How a calibration source reads in a note.
_SOURCES = {"measured": "from its measured peak", "oom_corrected": "raised after an OOM kill",
            "model": "as declared", "default": "the default footprint"}
_NEEDS = re.compile(r"needs (\d+(?:\.\d+)? [KMGT]?i?B)")
_ENDS = {"timeout": "a timeout", "stalled": "a stall (no heartbeat)", "lost": "a lost job",
         "cancelled": "a cancel", "pruned": "pruning"}


@attrs.define
class _Stage:
    __repr__ = record_repr  # attrs' text, not compiled per class

    admitted: Mapping[str, Any] = attrs.field(factory=dict)   # the last stage_admitted
    attempt: int = 0
    cap: int | None = None
    ended: Mapping[str, Any] | None = None      # the last stage_finished of an attempt
    previous: Mapping[str, Any] | None = None   # how the attempt before the current one ended
    retry: Mapping[str, Any] | None = None      # the stage_retrying announced
    metric: Mapping[str, Any] | None = None     # the last stage_metric of the current attempt
    stopping: str = ""
    ooms: int = 0


def _size(n: Any) -> str:
    return human_bytes(n) if isinstance(n, int) and n > 0 else ""


def ending(record: Mapping[str, Any]) -> str:
    """How an attempt ended, from its ``stage_finished``: "an OOM kill at its 256.0 MiB cap"."""
    cls = str(record.get("classification", ""))
    if cls == "oom":
        cap = _size(record.get("cap_bytes"))
        return f"an OOM kill at its {cap} cap" if cap else "an OOM kill"
    if cls in _ENDS:
        return _ENDS[cls]
    error = str(record.get("error") or "").strip()
    return f"an error ({error[:60]})" if error else "an error"


def _metric(record: Mapping[str, Any] | None) -> str:
    if not record:
        return ""
    raw = record.get("values")
    values: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in list(values.items())[:3])
    step = record.get("step")
    text = (f"step {step}: " if step is not None else "") + shown
    return text[:60]


class StageHistory:
    """Each stage's history in one run, from the status events (see the module docstring)."""

    def __init__(self) -> None:
        self.stages: dict[str, _Stage] = {}
        self.events = 0

    def _of(self, name: str) -> _Stage:
        return self.stages.setdefault(name, _Stage())

    def take(self, record: Mapping[str, Any]) -> None:
        """Take in one status event."""
        self.events += 1
        kind = record.get("event")
        name = record.get("stage")
        if not isinstance(name, str):
            return
        h = self._of(name)
        if kind == "stage_admitted":
            h.admitted = record
            number = int(record.get("attempt") or 1)
            if number > h.attempt and h.ended is not None:
                h.previous = h.ended
            h.attempt, h.metric, h.stopping, h.retry = number, None, "", None
        elif kind == "stage_started":
            h.attempt = int(record.get("attempt") or h.attempt or 1)
            h.cap = record.get("cap_bytes")
        elif kind == "stage_metric":
            h.metric = record
        elif kind == "stage_soft_timeout":
            h.stopping = (f"soft timeout after {human_seconds(record.get('after'))}: asked to "
                          f"stop (SIGTERM), {human_seconds(record.get('grace'))} to do so")
        elif kind == "stage_killed":
            h.stopping = f"killing it: {record.get('reason') or record.get('classification')}"
        elif kind == "stage_finished":
            if record.get("attempt"):
                h.ended = record
                h.ooms += record.get("classification") == "oom"
        elif kind == "stage_retrying":
            h.retry = record

    # -- plain lines --------------------------------------------------------------------

    def _after(self, h: _Stage, cap: Any) -> list[str]:
        """What the attempt now running follows: the previous attempt, and a raised cap."""
        if h.previous is None or h.attempt < 2:
            return []
        out = [f"attempt {h.attempt} after {ending(h.previous)}"]
        old = h.previous.get("cap_bytes")
        if h.previous.get("classification") == "oom" and isinstance(old, int) and \
                isinstance(cap, int) and old > 0:
            out.append(f"cap raised {human_bytes(old)} → {human_bytes(cap)}")
        return out

    def started_details(self, name: str) -> list[str]:
        """The words of a ``running`` line: its cap, and why this attempt or this size."""
        h = self._of(name)
        out = [f"cap {human_bytes(h.cap)}" if h.cap else "no memory cap"]
        out += self._after(h, h.cap)
        adm = h.admitted
        if adm.get("decision") == "right_size" and adm.get("reason"):
            out.append(f"right-sized: {adm['reason']}")
        waited = adm.get("waited")
        if isinstance(waited, int | float) and waited >= 1.0:
            out.append(f"waited {human_seconds(waited)} for memory")
        return out

    def retry_text(self, name: str, retry_in: float | None = None) -> str:
        """The words of a ``retrying`` line: how the attempt ended, and what comes next
        (``retry_in``: seconds left, when known; else the wait the retry was announced with)."""
        h = self._of(name)
        retry = h.retry or {}
        ended = ending(h.ended) if h.ended is not None else "a failed attempt"
        after = retry.get("after") if retry_in is None else retry_in
        when = f"in {human_seconds(after)}" if isinstance(after, int | float) and after > 0 \
            else "as soon as it is admitted"
        number = retry.get("attempt") or h.attempt + 1
        if h.ended is not None and h.ended.get("classification") == "oom":
            return f"after {ended}: attempt {number} {when}, with a larger cap"
        most = retry.get("max_attempts")
        of = f" of {most}" if most else ""
        return f"after {ended}: attempt {number}{of} {when}"

    def stopping(self, name: str) -> str:
        return self._of(name).stopping

    def finished_details(self, name: str, record: Mapping[str, Any]) -> list[str]:
        """The words of a line for a stage that ended for good (ok, failed, cancelled…)."""
        h = self._of(name)
        state = record.get("state")
        out = []
        if state in ("ok", "failed") and isinstance(record.get("duration"), int | float):
            out.append(human_seconds(record["duration"]))
        if _size(record.get("peak_bytes")):
            out.append(f"peak {_size(record.get('peak_bytes'))}")
        if state == "ok" and h.previous is not None and h.attempt > 1:
            out.append(f"on attempt {h.attempt}, after {ending(h.previous)}")
        if state == "failed" and h.attempt > 1:
            out.append(f"attempt {h.attempt}")
        if record.get("error") and state != "ok":
            out.append(str(record["error"]))
        return out

    # -- table cells --------------------------------------------------------------------

    def label(self, view: StageView) -> str:
        return view.state

    def time(self, view: StageView) -> str:
        if view.state == "retrying" and view.retry_in:
            return f"in {human_seconds(view.retry_in)}"
        return human_seconds(view.elapsed) if view.elapsed is not None else ""

    def memory(self, view: StageView) -> str:
        """Live use against the cap while running; the peak against the cap once done."""
        cap = _size(view.cap)
        if view.state == "running":
            live = _size(view.live)
            if live:
                return f"{live} / {cap} cap" if cap else f"{live} used"
            if cap:
                return f"cap {cap}"
            return f"{_size(view.footprint)} booked" if _size(view.footprint) else ""
        if view.state == "retrying":
            h = self.stages.get(view.name)
            if h is not None and h.ended is not None and h.ended.get("classification") == "oom":
                return f"hit {_size(h.ended.get('cap_bytes'))} cap"
            return ""
        if view.state == "waiting":  # admission's reason starts with what it needs
            need = _NEEDS.match(view.note)
            return f"needs {need[1]}" if need else ""
        peak = _size(view.peak)
        if peak:
            return f"peak {peak} / {cap}" if cap else f"peak {peak}"
        return ""

    def note(self, view: StageView) -> str:
        """What the stage does now and why, in a few words (never empty)."""
        h = self.stages.get(view.name)
        state = view.state
        if state == "running":
            return self._running_note(view, h)
        if state == "retrying":
            return self.retry_text(view.name, view.retry_in) if h is not None and \
                h.ended is not None else view.note or "retry next"
        if state == "ok":
            parts = []
            if h is not None and h.previous is not None and h.attempt > 1:
                parts.append(f"on attempt {h.attempt}, after {ending(h.previous)}")
            if view.peak and view.cap:
                parts.append(f"peak {100 * view.peak / view.cap:.0f}% of its cap")
            return "; ".join(parts) or view.note or "done"
        if state == "failed" and h is not None and h.ended is not None and h.attempt > 1:
            return f"attempt {h.attempt}: {view.note}" if view.note else f"attempt {h.attempt}"
        return view.note or {"cached": "result from the cache", "pending": "not ready yet",
                             "waiting": "waiting for memory"}.get(state, state)

    def _running_note(self, view: StageView, h: _Stage | None) -> str:
        if view.note:  # the executor's word: stopping on a timeout or a kill
            return view.note
        if h is None:
            return f"attempt {view.attempt}" if view.attempt > 1 else "running"
        if h.stopping:
            return h.stopping
        parts = self._after(h, view.cap)
        adm = h.admitted
        if adm.get("decision") == "right_size" and adm.get("reason"):
            parts.append(f"right-sized: {adm['reason']}")
        metric = _metric(h.metric)
        if metric:
            parts.append(metric)
        if not parts:
            source = _SOURCES.get(str(adm.get("source", "")), "")
            booked = _size(adm.get("footprint_bytes"))
            parts.append(f"booked {booked} {source}".strip() if booked else "running")
        return "; ".join(parts)
