"""Prune a branch when a stage reports a non-finite metric (NaN, ±inf, or "nan").

Entry point ``prune-nonfinite``. Answers ``blut_stage_metrics`` last (``trylast``), so a
plugin with its own rule wins. A pruned stage is killed; every stage downstream of it is
recorded as pruned (not failed) and the other branches go on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import RunInfo, Stage

_NONFINITE_TEXT = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity",
                   "-infinity"}


def nonfinite(value: Any) -> bool:
    """True for NaN and infinities, as numbers or as their usual spellings."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return value.strip().lower() in _NONFINITE_TEXT
    return False


@hookimpl(trylast=True)
def blut_stage_metrics(run: RunInfo, stage: Stage, attempt: int,
                       metrics: Mapping[str, Any]) -> str | None:
    """Prune when any reported value is not finite; otherwise let the stage go on."""
    return "prune" if any(nonfinite(v) for k, v in metrics.items() if k != "step") else None
