"""What a stage declares about how it must be run: retries and timeouts.

Footprint declarations live in :mod:`blut_core.model.footprint`.
"""

from __future__ import annotations

import enum

import attrs
from attrs import validators as v

from blut_core.model.reprs import record_repr


class RetryOn(enum.Enum):
    """Which failures use the error-retry budget (``max_attempts``). Deterministic errors are
    never retried; OOM kills are retried by ``oom_retries`` whatever this says."""

    TRANSIENT = "transient"   # errors, timeouts, stalls
    OOM = "oom"               # no errors: only kernel OOM kills (by ``oom_retries``)
    ANY = "any"               # everything but deterministic errors


class Backoff(enum.Enum):
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


#: OOM retries a stage gets unless its policy says otherwise: room for four doublings of
#: its cap (a stage using 3× its declaration needs two).
OOM_RETRIES = 4


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and when a failed attempt is tried again.

    ``max_attempts`` is the error-retry budget: attempts that did not end in an OOM kill,
    the first try included. ``delay`` is the first wait in seconds before such a retry,
    doubled each retry when ``backoff`` is exponential, and never above ``max_delay``.

    ``oom_retries``: how many times a stage killed by its memory cap is tried again, at
    once, with an escalated cap (the broker's self-healing loop, on by default and apart
    from the error budget); ``0`` switches it off.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    max_attempts: int = attrs.field(default=1, validator=v.ge(1))
    backoff: Backoff = attrs.field(default=Backoff.EXPONENTIAL, converter=Backoff)
    delay: float = attrs.field(default=1.0, validator=v.ge(0.0))
    max_delay: float = attrs.field(default=60.0, validator=v.ge(0.0))
    retry_on: RetryOn = attrs.field(default=RetryOn.TRANSIENT, converter=RetryOn)
    oom_retries: int = attrs.field(default=OOM_RETRIES, validator=v.ge(0))

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

    __repr__ = record_repr  # attrs' text, not compiled per class

    soft: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    hard: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    grace: float = attrs.field(default=5.0, validator=v.ge(0.0))
    stall_after: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
