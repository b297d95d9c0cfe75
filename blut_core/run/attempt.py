"""One stage attempt as the executor follows it: its record, limits and classification."""

from __future__ import annotations

import signal
from pathlib import Path

import attrs

from blut_core.model.jobs import JobHandle, JobState
from blut_core.model.outcome import Classification
from blut_core.model.stage import Stage
from blut_core.store.rundir import tail_line

EXIT_DETERMINISTIC = 3  # blut_core.process.runner's exit code for never-retry failures
_SHELL_CANNOT_RUN = (126, 127)  # "not executable", "not found": retrying cannot help


@attrs.define
class Attempt:
    """A stage attempt the executor is following."""

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

    def elapsed(self, now: float) -> float:
        return now - self.started


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


def deadlines(attempt: Attempt) -> list[float]:
    """The monotonic times at which a limit of the running attempt falls due."""
    t = attempt.stage.timeouts
    out = []
    if t.hard is not None:
        out.append(attempt.started + t.hard)
    if t.soft is not None:
        out.append(attempt.started + t.soft if attempt.term_sent is None
                   else attempt.term_sent + t.grace)
    if t.stall_after is not None and attempt.last_beat is not None:
        out.append(attempt.last_beat + t.stall_after)
    return out


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
        return "killed by its memory cap"
    if state.signal:
        return f"killed by signal {signal.Signals(state.signal).name}"
    tail = tail_line(attempt.dir / "stderr.log")
    return f"exit code {state.returncode}" + (f": {tail}" if tail else "")
