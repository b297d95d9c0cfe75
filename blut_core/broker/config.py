"""The broker's knobs: floor, headroom, escalation, the default footprint, waiting.

Defaults scale with the box so that one set of numbers makes sense on a 4 GiB laptop VM,
a 24 GiB CI box and a 2 TiB server; each has a minimum. Environment variables override:

=========================  ===========================================================
``BLUT_FLOOR``             memory always left free: a size (``2G``) or a share (``5%``)
``BLUT_HEADROOM``          cap above footprint: a size (``256M``) or a share (``10%``)
``BLUT_ESCALATION_FACTOR`` growth of an OOM-corrected bound per OOM kill (> 1; 2)
``BLUT_ESCALATION_STEP``   least growth of an OOM-corrected bound (a size)
``BLUT_DEFAULT_FOOTPRINT`` footprint of a stage that declares none (a size)
``BLUT_ADMISSION_TIMEOUT`` seconds a run may wait for memory before refusing (float)
=========================  ===========================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import attrs

from blut_core.errors import ConfigError
from blut_core.model.reprs import record_repr
from blut_core.model.sizes import GiB, MiB, parse_fraction, parse_size

#: Footprint of a stage that declares none (``blut plan`` flags such stages).
DEFAULT_FOOTPRINT = 1 * GiB
FLOOR_MIN = 1 * GiB
HEADROOM_MIN = 64 * MiB
STEP_MIN = 64 * MiB
#: Growth of an OOM bound per kill: a stage using 2× its declaration runs on its first
#: retry, one using 3× on its second (docs/broker.md, "Escalation").
ESCALATION_FACTOR = 2.0


def default_floor(box: int) -> int:
    """Memory never given out: 10 % of the box, at most 2 GiB + 3 %, at least 1 GiB.

    4 GiB → 1 GiB; 24 GiB → 2.4 GiB; 62 GiB → 3.9 GiB; 2 TiB → 63 GiB.
    """
    return max(FLOOR_MIN, min(box // 10, 2 * GiB + box * 3 // 100))


@attrs.frozen(kw_only=True)
class BrokerConfig:
    """Admission and calibration settings (``None`` fields: scale with the box)."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    floor: int | None = None
    floor_share: float | None = None
    headroom: int | None = None
    headroom_share: float = 0.10
    escalation_factor: float = ESCALATION_FACTOR
    escalation_step: int | None = None
    default_footprint: int = DEFAULT_FOOTPRINT
    wait_timeout: float = 3600.0
    measured_clean_share: float = 0.90

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> BrokerConfig:
        """Read the ``BLUT_*`` overrides; a bad value is a one-line ConfigError."""
        env = os.environ if environ is None else environ
        kw: dict[str, object] = {}
        floor = env.get("BLUT_FLOOR", "").strip()
        if floor.endswith("%"):
            kw["floor_share"] = parse_fraction(floor, what="BLUT_FLOOR")
        elif floor:
            kw["floor"] = parse_size(floor, what="BLUT_FLOOR")
        headroom = env.get("BLUT_HEADROOM", "").strip()
        if headroom.endswith("%"):
            kw["headroom_share"] = parse_fraction(headroom, what="BLUT_HEADROOM")
        elif headroom:
            kw["headroom"] = parse_size(headroom, what="BLUT_HEADROOM")
        step = env.get("BLUT_ESCALATION_STEP", "").strip()
        if step:
            kw["escalation_step"] = parse_size(step, what="BLUT_ESCALATION_STEP")
        factor = env.get("BLUT_ESCALATION_FACTOR", "").strip()
        if factor:
            try:
                growth = float(factor)
            except ValueError:
                growth = math.nan
            if not math.isfinite(growth) or growth <= 1.0:
                raise ConfigError(f"BLUT_ESCALATION_FACTOR: expected a number above 1, got {factor!r}",
                                  hint="e.g. 2 doubles the memory of an OOM-killed stage each retry")
            kw["escalation_factor"] = growth
        default = env.get("BLUT_DEFAULT_FOOTPRINT", "").strip()
        if default:
            kw["default_footprint"] = parse_size(default, what="BLUT_DEFAULT_FOOTPRINT")
        timeout = env.get("BLUT_ADMISSION_TIMEOUT", "").strip()
        if timeout:
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds < 0:
                raise ConfigError(f"BLUT_ADMISSION_TIMEOUT: expected seconds ≥ 0, got {timeout!r}")
            kw["wait_timeout"] = seconds
        return cls(**kw)  # type: ignore[arg-type]

    def floor_for(self, box: int) -> int:
        """Bytes always left free on a box of ``box`` bytes."""
        if self.floor is not None:
            return self.floor
        if self.floor_share is not None:
            return int(box * self.floor_share)
        return default_floor(box)

    def headroom_for(self, footprint: int) -> int:
        """Cap minus footprint: 10 % of the footprint, at least 64 MiB (or the override)."""
        if self.headroom is not None:
            return self.headroom
        return max(HEADROOM_MIN, math.ceil(footprint * self.headroom_share))

    def step_for(self, box: int) -> int:
        """Least growth of an OOM-corrected bound: 1/64 of the box, at least 64 MiB."""
        if self.escalation_step is not None:
            return self.escalation_step
        return max(STEP_MIN, box // 64)
