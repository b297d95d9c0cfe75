"""What a stage declares about how it must be run: retries and timeouts.

Footprint declarations live in :mod:`blut_core.model.footprint`.
"""

from __future__ import annotations

import enum

import attrs
from attrs import validators as v


class RetryOn(enum.Enum):
    """Which failures a retry policy retries. Deterministic errors are never retried."""

    TRANSIENT = "transient"   # errors, OOM kills, timeouts, stalls
    OOM = "oom"               # only kernel OOM kills (with an escalated cap)
    ANY = "any"               # everything but deterministic errors


class Backoff(enum.Enum):
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and when a failed attempt is tried again.

    ``max_attempts`` counts the first try; ``delay`` is the first wait in seconds, doubled
    each retry when ``backoff`` is exponential, and never above ``max_delay``.
    """

    max_attempts: int = attrs.field(default=1, validator=v.ge(1))
    backoff: Backoff = attrs.field(default=Backoff.EXPONENTIAL, converter=Backoff)
    delay: float = attrs.field(default=1.0, validator=v.ge(0.0))
    max_delay: float = attrs.field(default=60.0, validator=v.ge(0.0))
    retry_on: RetryOn = attrs.field(default=RetryOn.TRANSIENT, converter=RetryOn)

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 is the first retry)."""
        if attempt <= 1:
            return 0.0
        if self.backoff is Backoff.FIXED:
            return min(self.delay, self.max_delay)
        return float(min(self.delay * (2 ** (attempt - 2)), self.max_delay))


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-attempt time limits, in seconds (``None``: no limit).

    ``soft``: SIGTERM to the stage's process group, then ``grace`` seconds, then SIGKILL.
    ``hard``: SIGKILL of the group at once. ``stall_after``: a stage that has sent a
    heartbeat and then stays silent this long is killed as stalled.
    """

    soft: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    hard: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    grace: float = attrs.field(default=5.0, validator=v.ge(0.0))
    stall_after: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
