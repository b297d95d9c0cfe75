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
    from blut_core.attempt import Attempt
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
    """A scheduling policy's state, for live progress and for planning the order."""

    waiting: Mapping[str, str] = attrs.field(factory=dict)   # stage -> why it waits
    booked: int | None = None
    available: int | None = None
    box: int | None = None
    capacity: int | None = None   # bytes stages could book now (None: memory is not counted)
    jobs: int | None = None       # stages at once, at most


@attrs.define
class BoundedPolicy:
    """At most ``max_parallel`` stages at once, in priority order, uncapped."""

    max_parallel: int = 1

    def size_hint(self, stage: Stage) -> int:
        return 0

    def duration_hint(self, stage: Stage) -> float | None:
        return stage.expected_seconds

    def view(self) -> PolicyView:
        return PolicyView(jobs=self.max_parallel)

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


def simulate(plan: Plan, order: Sequence[str], durations: Mapping[str, float],
             sizes: Mapping[str, int], capacity: int | None, jobs: int) -> float:
    """The makespan of list-scheduling ``plan`` in ``order``, as the memory policy would.

    At every moment the ready stages are offered in ``order``; a stage starts when it fits in
    the free memory and a job slot (smaller ones behind a waiting one may start: backfill).
    """
    import heapq

    rank = {name: i for i, name in enumerate(order)}
    inputs = {s.name: s.inputs for s in plan}
    waiting_on = {s.name: len(s.inputs) for s in plan}
    children: dict[str, list[str]] = {s.name: [] for s in plan}
    for s in plan:
        for i in s.inputs:
            children[i].append(s.name)
    ready = sorted((n for n, k in waiting_on.items() if k == 0), key=rank.__getitem__)
    free = capacity
    now, done = 0.0, 0
    running: list[tuple[float, str]] = []
    while done < len(inputs):
        started = []
        for name in ready:
            if len(running) >= jobs:
                break
            size = sizes.get(name, 0)
            if free is None or size <= free:
                heapq.heappush(running, (now + durations[name], name))
                if free is not None:
                    free -= size
                started.append(name)
        ready = [n for n in ready if n not in started]
        if not running:
            return float("inf")  # something can never fit: not a candidate
        now, name = heapq.heappop(running)
        done += 1
        if free is not None:
            free += sizes.get(name, 0)
        for c in children[name]:
            waiting_on[c] -= 1
            if waiting_on[c] == 0:
                ready.append(c)
        ready.sort(key=rank.__getitem__)
    return now


def best_order(plan: Plan, heuristic: Sequence[str], durations: Mapping[str, float],
               sizes: Mapping[str, int], capacity: int | None, jobs: int, *,
               budget: float | None = None, samples: int | None = None,
               seed: int = 0) -> list[str]:
    """The heuristic order, or a better one found by simulating seeded random orders.

    Used when every duration is known. ``samples`` orders (by default ``4000 // stages``,
    at least 16) are drawn from a seeded generator and the one with the shortest simulated
    makespan wins (the heuristic wins ties); the search stops early when a schedule reaches
    the lower bound, and never runs longer than ``budget`` seconds (by default 0.5 % of the
    plan's work, at most 0.05 s, so a short run barely pays for it). Unless that time cap
    cuts it short, the same plan and numbers always give the same order.
    """
    import random
    import time

    work = sum(durations.values())
    if budget is None:
        budget = min(0.05, 0.005 * work)
    path = max(critical_paths(plan, lambda s: durations[s.name]).values(), default=0.0)
    area = (sum(durations[n] * sizes.get(n, 0) for n in durations) / capacity
            if capacity else 0.0)
    bound = max(path, area, work / max(1, jobs))
    best, best_span = list(heuristic), simulate(plan, heuristic, durations, sizes, capacity, jobs)
    rng = random.Random(seed)
    names = list(heuristic)
    deadline = time.monotonic() + budget
    draws = samples if samples is not None else max(16, 4000 // max(1, len(names)))
    for _ in range(draws):
        if best_span <= bound * 1.0001 or time.monotonic() > deadline:
            break
        candidate = names[:]
        rng.shuffle(candidate)
        span = simulate(plan, candidate, durations, sizes, capacity, jobs)
        if span < best_span:
            best, best_span = candidate, span
    return best
