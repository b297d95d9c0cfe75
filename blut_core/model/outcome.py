"""Records the executor hands to notification hooks and puts in the run summary."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import attrs

from blut_core.model.reprs import record_repr


class StageState(enum.Enum):
    """How a stage ended in a run."""

    OK = "ok"                  # ran and succeeded
    CACHED = "cached"          # skipped: its cache key was already stored
    FAILED = "failed"          # ran and failed (see ``classification``)
    PRUNED = "pruned"          # killed or skipped because a metric hook pruned its branch
    UPSTREAM_FAILED = "upstream_failed"  # never ran: an input failed
    CANCELLED = "cancelled"    # the run was cancelled while it ran or waited
    REFUSED = "refused"        # admission can never fit it on this machine


class Classification(enum.Enum):
    """Why an attempt ended the way it did (from kernel and process evidence)."""

    OK = "ok"
    ERROR = "error"                    # non-zero exit or exception; may be retried
    DETERMINISTIC = "deterministic"    # bad params, missing input, own validation: never retried
    OOM = "oom"                        # killed by its memory cap (kernel evidence)
    TIMEOUT = "timeout"                # soft or hard timeout
    STALLED = "stalled"                # heartbeat watchdog
    PRUNED = "pruned"                  # killed by a metric decision (e.g. NaN)
    CANCELLED = "cancelled"            # the run was cancelled
    LOST = "lost"                      # the launcher lost the job


@attrs.frozen(kw_only=True)
class RunInfo:
    """A run as notification hooks see it."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    recipe: str
    run_dir: Path
    launcher: str
    stages: tuple[str, ...]


@attrs.frozen(kw_only=True)
class StageOutcome:
    """One finished attempt (or a cached skip) of one stage."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: str
    attempt: int
    state: StageState
    classification: Classification
    returncode: int | None = None
    duration: float = 0.0
    peak_bytes: int | None = None
    cap_bytes: int | None = None
    output_hash: str | None = None
    cache_key: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in (StageState.OK, StageState.CACHED)

    def to_event(self) -> dict[str, Any]:
        """The fields of this outcome's ``stage_finished`` event."""
        return {"stage": self.stage, "attempt": self.attempt, "state": self.state.value,
                "classification": self.classification.value, "returncode": self.returncode,
                "duration": round(self.duration, 6), "peak_bytes": self.peak_bytes,
                "cap_bytes": self.cap_bytes, "output_hash": self.output_hash,
                "cache_key": self.cache_key, "error": self.error}


@attrs.frozen(kw_only=True)
class RunSummary:
    """What ``blut run`` prints at the end and what ``run_finished`` carries."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    recipe: str
    run_dir: Path
    outcome: str                       # ok | failed | cancelled | refused
    wall: float
    stages: tuple[StageOutcome, ...]

    def count(self, state: StageState) -> int:
        return sum(1 for s in self.stages if s.state is state)
