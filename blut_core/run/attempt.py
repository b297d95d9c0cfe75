"""One stage attempt as the executor follows it: its record, limits and classification."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from blut_core.errors import DiskFull, is_disk_full
from blut_core.model.jobs import JobHandle, JobState, JobStatus
from blut_core.model.outcome import Classification
from blut_core.model.reprs import record_repr
from blut_core.model.sizes import GiB, MiB, format_size
from blut_core.model.stage import Stage
from blut_core.store.rundir import tail_line, write_bytes

EXIT_DETERMINISTIC = 3  # blut_core.process.runner's exit code for never-retry failures
_SHELL_CANNOT_RUN = (126, 127)  # "not executable", "not found": retrying cannot help


@attrs.define
class Attempt:
    """A stage attempt the executor is following."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: Stage
    number: int
    handle: JobHandle
    dir: Path
    tmp_out: Path
    key: str | None
    started: float
    cap: int | None = None
    footprint: int | None = None
    events_offset: int = 0
    error: str | None = None
    error_kind: str | None = None
    forced: Classification | None = None
    last_beat: float | None = None
    term_sent: float | None = None
    #: the facts the policy admitted it on (``Launch.detail``: box_bytes, floor_bytes,
    #: model_bytes… for the memory policy)
    admission: Mapping[str, Any] = attrs.field(factory=dict)
    #: when the job really started (monotonic), once its launcher has said so
    #: (``JobState.started_at``); until then its submission (``started``) stands in
    began: float | None = None
    #: the launcher says the job is still queued: its time limits do not run yet
    queued: bool = False
    #: files its launcher was to write where it runs (``Job.files``: a new run's context file)
    files: tuple[tuple[str, str], ...] = ()

    def write_missing_files(self) -> None:
        """Write what the launcher of this failed attempt could not write (a full disk, most
        likely). On a full disk this raises :class:`DiskFull` naming the file, as the driver's
        own writes do: the run stops in one line, instead of failing its stages one by one."""
        for path, text in self.files:
            if os.path.exists(path):
                continue
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_bytes(Path(path), text.encode())
            except OSError as exc:  # anything else: the attempt's own failure stands
                if is_disk_full(exc):
                    raise DiskFull(path, needed=len(text)) from None

    @property
    def origin(self) -> float:
        """Where its time limits count from: its real start, else its submission."""
        return self.began if self.began is not None else self.started

    def elapsed(self, now: float) -> float:
        return now - self.origin

    def observe(self, state: JobState, now: float) -> None:
        """Take in a running job's state: whether it still queues, and when it started.

        A cluster job can wait in its queue for hours; a hard timeout counts from the
        moment it started (``started_at``), never from its submission.
        """
        self.queued = state.status is JobStatus.PENDING
        if state.started_at is not None and self.began is None:
            self.began = now - max(0.0, time.time() - state.started_at)


_RETRYABLE = {
    "transient": {Classification.ERROR, Classification.OOM, Classification.TIMEOUT,
                  Classification.STALLED, Classification.LOST},
    "oom": {Classification.OOM},
    "any": {Classification.ERROR, Classification.OOM, Classification.TIMEOUT,
            Classification.STALLED, Classification.LOST},
}


def retryable(retry_on: str, cls: Classification) -> bool:
    """Whether a failure classified ``cls`` is retried under ``retry_on`` (transient|oom|any)."""
    return cls in _RETRYABLE[retry_on]


def retry_wait(attempt: Attempt, cls: Classification, oom_kills: int) -> float | None:
    """Seconds before a failed attempt is tried again, or ``None``: it is not.

    An OOM kill is retried at once with an escalated cap, ``oom_retries`` times, unless the
    policy found the box cannot give more; other failures by ``retry_on`` within
    ``max_attempts``, which OOM kills do not use up. ``oom_kills`` counts this one.
    """
    policy = attempt.stage.retry
    if cls is Classification.OOM:
        return 0.0 if not at_box_limit(attempt) and oom_kills <= policy.oom_retries else None
    if cls is Classification.LOST:  # retried at once, without using up the error budget
        return 0.0 if attempt.number <= policy.max_attempts + policy.oom_retries else None
    errors = attempt.number - oom_kills
    if errors < policy.max_attempts and retryable(policy.retry_on.value, cls):
        return policy.wait_before(errors + 1)
    return None


def deadlines(attempt: Attempt) -> list[float]:
    """The monotonic times at which a limit of the running attempt falls due."""
    t = attempt.stage.timeouts
    out: list[float] = []
    if attempt.queued:
        return out
    if t.hard is not None:
        out.append(attempt.origin + t.hard)
    if t.soft is not None:
        out.append(attempt.origin + t.soft if attempt.term_sent is None
                   else attempt.term_sent + t.grace)
    if t.stall_after is not None and attempt.last_beat is not None:
        out.append(attempt.last_beat + t.stall_after)
    return out


@attrs.frozen
class Breach:
    """A time limit a running attempt has reached: kill it as ``kill``, or, with ``kill``
    ``None``, send it the soft timeout's SIGTERM."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    kill: Classification | None
    message: str = ""


def limit_breach(attempt: Attempt, now: float) -> Breach | None:
    """The hard or soft timeout or heartbeat watchdog ``attempt`` has run into, if any.

    A job its launcher still queues has none: its limits count from its real start.
    """
    t = attempt.stage.timeouts
    if attempt.forced is not None or attempt.queued:
        return None
    elapsed = attempt.elapsed(now)
    if t.hard is not None and elapsed >= t.hard:
        return Breach(Classification.TIMEOUT, f"hard timeout after {t.hard:g}s")
    if t.soft is not None and elapsed >= t.soft and attempt.term_sent is None:
        return Breach(None)
    if attempt.term_sent is not None and now - attempt.term_sent >= t.grace:
        return Breach(Classification.TIMEOUT,
                      f"soft timeout after {t.soft:g}s (did not stop within {t.grace:g}s)")
    if (t.stall_after is not None and attempt.last_beat is not None
            and now - attempt.last_beat >= t.stall_after):
        return Breach(Classification.STALLED, f"stalled: no heartbeat for "
                      f"{now - attempt.last_beat:.1f}s (limit {t.stall_after:g}s)")
    return None


def classify(attempt: Attempt, state: JobState) -> Classification:
    """How an attempt ended, from kernel evidence first (its error may be filled in)."""
    if attempt.forced is not None:
        return attempt.forced
    if attempt.term_sent is not None:
        attempt.error = attempt.error or (
            f"soft timeout after {attempt.stage.timeouts.soft:g}s (stopped on SIGTERM)")
        return Classification.TIMEOUT
    if state.oom_killed:
        return Classification.OOM
    if state.lost:  # its node failed, or its job vanished: not the stage's doing
        attempt.error = attempt.error or f"lost: {state.detail or 'the launcher lost the job'}"
        return Classification.LOST
    if state.returncode == 0:
        return Classification.OK
    if attempt.error_kind == "deterministic" or (
            attempt.stage.kind == "python" and state.returncode == EXIT_DETERMINISTIC):
        return Classification.DETERMINISTIC
    if attempt.stage.kind == "command" and state.returncode in _SHELL_CANNOT_RUN:
        attempt.error = attempt.error or (
            f"exit code {state.returncode}: the command was not found or is not executable"
            + (f" ({tail})" if (tail := tail_line(attempt.dir / "stderr.log")) else ""))
        return Classification.DETERMINISTIC
    return Classification.ERROR


def failure_text(attempt: Attempt, state: JobState) -> str:
    """One line saying how a failed attempt ended."""
    if state.oom_killed:
        return "killed by its memory cap" + (f" of {format_size(attempt.cap)}" if attempt.cap else "")
    if state.signal:
        return f"killed by signal {signal.Signals(state.signal).name}"
    tail = tail_line(attempt.dir / "stderr.log")
    return f"exit code {state.returncode}" + (f": {tail}" if tail else "")


def suggest_size(n: int) -> str:
    """A round size above ``n`` as a declaration would write it: ``"704M"``, ``"2.5G"``."""
    if n <= GiB:
        return f"{max(1, math.ceil(n / (64 * MiB))) * 64}M"
    halves = math.ceil(n / (GiB // 2))
    return f"{halves // 2}G" if halves % 2 == 0 else f"{halves / 2:.1f}G"


def memory_failure(attempt: Attempt, state: JobState, oom_kills: int) -> str:
    """The one line of a stage that finally failed on memory: the cap it had, what it
    reached, and how to declare a footprint (or why the box cannot give more). ``oom_kills``
    counts this one."""
    if at_box_limit(attempt):
        return clamped_failure(attempt, state)
    s = attempt.stage
    cap = attempt.cap or 0
    reached = max(state.peak_bytes or 0, cap)
    retries = s.retry.oom_retries
    if retries == 0:
        why = "; OOM retries are off for it (RetryPolicy(oom_retries=0))"
    else:
        why = f" after {oom_kills - 1} OOM {'retry' if oom_kills == 2 else 'retries'} " \
              f"with an escalated cap (RetryPolicy(oom_retries={retries}))"
    if s.footprint is None:
        declared = "it declares no footprint, so it got the default"
    else:
        declared = f"its {s.footprint.model} footprint declares too little"
    return (f"killed by its memory cap of {format_size(cap)} (it reached {format_size(reached)})"
            f"{why}; {declared}: declare what it needs, e.g. footprint=Footprint.fixed("
            f"\"{suggest_size(2 * reached)}\") or a Footprint.scaling(...) that grows with its "
            f"drivers (docs/broker.md, Footprints)")


def _limits(attempt: Attempt) -> tuple[int, int, int] | None:
    """(box, floor, the most the attempt could be given) from its admission, if known."""
    a = attempt.admission
    box, floor = a.get("box_bytes"), a.get("floor_bytes")
    if not isinstance(box, int) or not isinstance(floor, int) or box <= 0:
        return None
    ceiling = a.get("ceiling_bytes")
    return box, floor, ceiling if isinstance(ceiling, int) else max(0, box - floor)


def at_box_limit(attempt: Attempt) -> bool:
    """Whether the attempt's cap was already the most the box can give it."""
    limits = _limits(attempt)
    return bool(attempt.cap and limits is not None and attempt.cap >= limits[2])


def clamped_failure(attempt: Attempt, state: JobState) -> str:
    """The one line of a stage OOM-killed at the most this box can ever give it."""
    cap = attempt.cap or 0
    box, floor, ceiling = _limits(attempt) or (0, 0, 0)
    others = max(0, box - floor - ceiling)
    held = f" − {format_size(others)} held by other processes" if others else ""
    model = attempt.admission.get("model_bytes")
    over = ""
    if isinstance(model, int) and model > 0:
        what = "its declared footprint" if attempt.stage.footprint else "the default footprint"
        over = f", {cap / model:.1f}× {what} of {format_size(model)}"
    return (f"killed by its memory cap of {format_size(cap)} (it reached "
            f"{format_size(max(state.peak_bytes or 0, cap))}), the most this box can give "
            f"({format_size(box)} box − {format_size(floor)} floor{held}): it needs more than "
            f"{format_size(cap)}{over}; run it on a machine with more memory, or make it hold "
            f"less at once")
