"""Scheduling: which ready stages may start now, and in what order they are offered.

The executor asks a :class:`SchedulingPolicy` only this; it does everything else. The
memory-aware policy is the broker's (``blut_core.broker.policy.MemoryPolicy``);
:class:`BoundedPolicy` is the plain one. :func:`critical_paths` ranks the ready set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from blut_core.executor import Attempt
    from blut_core.outcome import StageOutcome
    from blut_core.plan import Plan
    from blut_core.stage import Stage


@attrs.frozen(kw_only=True)
class Launch:
    """A policy's decision to start ``stage`` now, with what it was admitted at.

    ``cap`` is the kernel memory cap in bytes (``None``: uncapped); ``knobs`` are right-sized
    values (e.g. ``{"workers": 3}``) the stage must run with (``ctx.knobs``); ``footprint``
    is what was booked; ``decision`` is ``admit`` or ``right_size``; ``reason`` says why.
    """

    stage: Stage
    cap: int | None = None
    footprint: int | None = None
    knobs: Mapping[str, int] = attrs.field(factory=dict)
    decision: str = "admit"
    reason: str = ""
    waited: float = 0.0
    detail: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Refusal:
    """A policy's decision that ``stage`` can never run here (e.g. larger than the box)."""

    stage: Stage
    reason: str


class SchedulingPolicy(Protocol):
    """Decides which ready stages may start now, and at what cap. The executor does the rest."""

    def choose(self, ready: Sequence[Stage], running: Sequence[Attempt]) -> list[Launch | Refusal]:
        """Of ``ready`` (in plan order), those to start now (or refuse), in start order.

        A stage neither launched nor refused waits; it is offered again on the next pass.
        """
        ...

    def started(self, attempt: Attempt) -> None:
        """``attempt`` was submitted (book what it holds)."""
        ...

    def finished(self, attempt: Attempt, outcome: StageOutcome) -> None:
        """``attempt`` ended (release what it held; learn from its peak or OOM)."""
        ...

    def next_check(self) -> float | None:
        """Seconds after which waiting stages should be offered again (``None``: on events only)."""
        ...

    def size_hint(self, stage: Stage) -> int:
        """Bytes ``stage`` would book now (orders the ready set: larger first), 0 if unknown."""
        ...

    def duration_hint(self, stage: Stage) -> float | None:
        """Seconds ``stage`` is expected to take (orders by critical path), ``None`` if unknown."""
        ...

    def view(self) -> PolicyView:
        """What the policy holds: why stages wait, memory booked and available (progress)."""
        ...

    def close(self) -> None:
        """The run is over: release what is left and save what was learnt."""
        ...


@attrs.frozen(kw_only=True)
class PolicyView:
    """A scheduling policy's state, for live progress."""

    waiting: Mapping[str, str] = attrs.field(factory=dict)   # stage -> why it waits
    booked: int | None = None
    available: int | None = None
    box: int | None = None


@attrs.define
class BoundedPolicy:
    """At most ``max_parallel`` stages at once, in priority order, uncapped."""

    max_parallel: int = 1

    def size_hint(self, stage: Stage) -> int:
        return 0

    def duration_hint(self, stage: Stage) -> float | None:
        return stage.expected_seconds

    def view(self) -> PolicyView:
        return PolicyView()

    def close(self) -> None:
        return None

    def choose(self, ready: Sequence[Stage], running: Sequence[Attempt]) -> list[Launch | Refusal]:
        free = max(0, self.max_parallel - len(running))
        return [Launch(stage=s) for s in ready[:free]]

    def started(self, attempt: Attempt) -> None:
        return None

    def finished(self, attempt: Attempt, outcome: StageOutcome) -> None:
        return None

    def next_check(self) -> float | None:
        return None


def critical_paths(plan: Plan, duration: Callable[[Stage], float | None]) -> dict[str, float]:
    """Each stage's critical-path length: the longest time from its start to the plan's end.

    Durations come from ``duration`` (declared ``expected_seconds``, or measured in earlier
    runs); a stage without one counts as the mean of the known ones (1 s if none is known),
    so a first run orders by the number of stages on the longest chain. The ready set is
    started longest path first (the critical path is never left waiting), then largest
    memory first (big stages are hard to fit later; small ones fill the gaps they leave).
    """
    known = {s.name: d for s in plan if (d := duration(s)) is not None}
    default = sum(known.values()) / len(known) if known else 1.0
    children: dict[str, list[str]] = {s.name: [] for s in plan}
    for s in plan:
        for i in s.inputs:
            children[i].append(s.name)
    length: dict[str, float] = {}
    for s in reversed(plan.topological()):
        own = known.get(s.name, default)
        length[s.name] = own + max((length[c] for c in children[s.name]), default=0.0)
    return length
