"""Admission, as pure functions: refuse, wait, right-size or admit with a cap.

- **refuse**: the footprint can never fit (``box − floor``), even at every knob's minimum;
- **wait**: it fits the box but not now (``available − booked − floor``);
- **right_size**: the stage declares knobs (workers, batch…): choose the largest values
  that fit now, lowering knobs in declaration order; the stage runs with exactly those;
- **admit**: with ``cap = footprint + headroom`` (never above what the box can give).

Nothing here reads the machine: callers pass the numbers, tests pass any numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from blut_core.model.footprint import Knob
from blut_core.model.reprs import record_repr
from blut_core.model.sizes import format_size

ADMIT, RIGHT_SIZE, WAIT, REFUSE = "admit", "right_size", "wait", "refuse"


@attrs.frozen(kw_only=True)
class Budget:
    """The numbers one decision is made against, in bytes."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    box: int          # the most the box can ever give (RAM, or blut's cgroup limit)
    available: int    # free now (MemAvailable, and the cgroup's room)
    booked: int       # booked by running stages and not yet in use (ledger)
    floor: int        # always left free

    @property
    def ceiling(self) -> int:
        """The largest footprint that can ever be admitted here."""
        return max(0, self.box - self.floor)

    @property
    def free(self) -> int:
        """The largest footprint that can be admitted now."""
        return max(0, self.available - self.booked - self.floor)


@attrs.frozen(kw_only=True)
class Admission:
    """A decision for one stage: what it was admitted at, or why not."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    decision: str
    footprint: int
    cap: int | None
    drivers: Mapping[str, int] = attrs.field(factory=dict)
    knobs: Mapping[str, int] = attrs.field(factory=dict)
    reason: str = ""

    @property
    def launches(self) -> bool:
        return self.decision in (ADMIT, RIGHT_SIZE)


def decide(need: int, budget: Budget) -> str:
    """``refuse``, ``wait`` or ``admit`` for a footprint of ``need`` bytes."""
    if budget.box <= 0:  # the probe could not read the machine: do not refuse on no data
        return ADMIT
    if need > budget.ceiling:
        return REFUSE
    if need > budget.free:
        return WAIT
    return ADMIT


def cap_for(footprint: int, headroom: int, budget: Budget) -> int:
    """``footprint + headroom``, lowered to what the box can give (never below the footprint)."""
    cap = footprint + headroom
    if budget.box > 0:
        cap = min(cap, max(footprint, budget.ceiling))
    return cap


def _largest(need_at: Callable[[Mapping[str, int]], int], values: dict[str, int], name: str,
             low: int, high: int, limit: int) -> int:
    """The largest ``v`` in ``[low, high]`` with ``need_at(values | {name: v}) ≤ limit``."""
    while low < high:
        mid = (low + high + 1) // 2
        if need_at({**values, name: mid}) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def admit(stage: str, need_at: Callable[[Mapping[str, int]], int], requested: Mapping[str, int],
          knobs: Mapping[str, Knob], budget: Budget, headroom: Callable[[int], int]) -> Admission:
    """Decide for ``stage`` whose footprint at drivers ``d`` is ``need_at(d)``.

    ``requested`` are the drivers it asks for; ``knobs`` the drivers admission may lower;
    ``headroom(footprint)`` the margin its cap gets above its footprint.
    """
    want = dict(requested)
    need = need_at(want)
    verdict = decide(need, budget)
    if verdict == ADMIT:
        return Admission(decision=ADMIT, footprint=need, cap=cap_for(need, headroom(need), budget),
                         drivers=want, knobs={k: want[k] for k in knobs},
                         reason=_fits(need, budget))
    least = {**want, **{k: min(want[k], knob.minimum) for k, knob in knobs.items()}}
    least_need = need_at(least) if knobs else need
    if decide(least_need, budget) == REFUSE:
        at = " even at " + _show(least, knobs) if knobs else ""
        return Admission(decision=REFUSE, footprint=least_need, cap=None, drivers=least,
                         reason=f"stage {stage!r} needs {format_size(least_need)}{at}, but this "
                                f"box can give at most {format_size(budget.ceiling)} "
                                f"({format_size(budget.box)} box − {format_size(budget.floor)} floor)")
    if not knobs or least_need > budget.free:
        return Admission(decision=WAIT, footprint=least_need if knobs else need, cap=None,
                         drivers=least if knobs else want,
                         reason=f"needs {format_size(least_need if knobs else need)}, "
                                f"{format_size(budget.free)} free now "
                                f"({format_size(budget.available)} available − "
                                f"{format_size(budget.booked)} booked − "
                                f"{format_size(budget.floor)} floor)")
    chosen = dict(least)
    for name, knob in knobs.items():
        chosen[name] = _largest(need_at, chosen, name, min(want[name], knob.minimum), want[name],
                                budget.free)
    fitted = need_at(chosen)
    changes = ", ".join(f"{k} {want[k]} → {chosen[k]}" for k in knobs if chosen[k] != want[k])
    return Admission(decision=RIGHT_SIZE, footprint=fitted,
                     cap=cap_for(fitted, headroom(fitted), budget), drivers=chosen,
                     knobs={k: chosen[k] for k in knobs},
                     reason=f"{changes} to fit {format_size(budget.free)} free "
                            f"(asked for {format_size(need)})")


def _show(values: Mapping[str, int], knobs: Mapping[str, Knob]) -> str:
    return ", ".join(f"{k}={values[k]}" for k in knobs)


def _fits(need: int, budget: Budget) -> str:
    if budget.box <= 0:
        return "memory probe unavailable: admitted without a check"
    return f"{format_size(need)} fits {format_size(budget.free)} free"
