"""Scheduling: which ready stages may start now, and in what order they are offered.

The executor asks a :class:`SchedulingPolicy` only this; it does everything else. The
memory-aware policy is the broker's (``blut_core.run.policy.MemoryPolicy``);
:class:`BoundedPolicy` is the plain one. :func:`critical_paths` ranks the ready set, and
:func:`best_order` searches for a better order in simulation (:func:`simulate`,
:func:`expected_makespan`).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from blut_core.model.reprs import record_repr

if TYPE_CHECKING:
    from blut_core.model.outcome import StageOutcome
    from blut_core.model.plan import Plan
    from blut_core.model.stage import Stage
    from blut_core.run.attempt import Attempt


@attrs.frozen(kw_only=True)
class Launch:
    """A policy's decision to start ``stage`` now, with what it was admitted at.

    ``cap`` is the kernel memory cap in bytes (``None``: uncapped); ``knobs`` are right-sized
    values (e.g. ``{"workers": 3}``) the stage must run with (``ctx.knobs``); ``footprint``
    is what was booked; ``decision`` is ``admit`` or ``right_size``; ``reason`` says why.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

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

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: Stage
    reason: str


class SchedulingPolicy(Protocol):
    """Decides which ready stages may start now, and at what cap. The executor does the rest."""

    def choose(self, ready: Sequence[Stage], running: Sequence[Attempt]) -> list[Launch | Refusal]:
        """Of ``ready`` (in priority order), those to start now (or refuse), in start order.

        A stage neither launched nor refused waits; it is offered again on the next pass.
        ``ready`` is found as it is read: read only as far as the free slots need, and a
        turn costs the stages looked at, not every stage that is ready.
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
class BookedRun:
    """Memory one blut process (a run) has booked in the machine-wide ledger."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    pid: int
    command: str                  # what the process runs, e.g. ``blut run cook:train``
    bytes: int                    # booked
    outstanding: int              # booked and not in use yet (what admission counts)
    stages: tuple[str, ...] = ()
    own: bool = False             # this run


@attrs.frozen(kw_only=True)
class PolicyView:
    """A scheduling policy's state, for live progress and for planning the order."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    waiting: Mapping[str, str] = attrs.field(factory=dict)   # stage -> why it waits
    booked: int | None = None
    available: int | None = None
    box: int | None = None
    capacity: int | None = None   # bytes stages could book now (None: memory is not counted)
    jobs: int | None = None       # stages at once, at most
    floor: int | None = None      # bytes always left free
    by_run: tuple[BookedRun, ...] = ()   # the ledger's bookings by run (while a stage waits)


@attrs.define
class BoundedPolicy:
    """At most ``max_parallel`` stages at once, in priority order, uncapped."""

    __repr__ = record_repr  # attrs' text, not compiled per class

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


#: Seconds the executor adds to every stage (admission, fork, reaping, promotion), on
#: average: a perturbed schedule lengthens each stage by 0 to twice this.
STAGE_OVERHEAD = 0.015
#: Seconds between the starts of stages admitted in one pass (the executor starts them one
#: after another), in a perturbed schedule.
START_GAP = 0.005
#: Stages that end within this many seconds of each other are handled in one admission
#: pass (the executor finds them all when it wakes up), in a perturbed schedule.
END_WINDOW = 0.003
#: How far a perturbed schedule moves each stage's duration: up to ± this share of it.
DURATION_SPREAD = 0.005
#: How much less memory a perturbed schedule may have: up to this share of it (what is
#: free on a shared machine moves, and a packing that needs the last bytes breaks).
MEMORY_SPREAD = 0.005
#: Perturbed schedules an order is scored on (their mean makespan).
TRIALS = 6

#: A perturbed schedule: every stage's duration (in the model's order), the memory, the
#: seconds between the starts of stages admitted in one pass, and the window within which
#: ends are handled in one pass.
_Trial = tuple[list[float], int, float, float]


class _Model:
    """A plan reduced to integer indices, to list-schedule many orders fast.

    Stages are numbered in name order: two stages that end at the same instant end in name
    order, as :func:`simulate` has always had them.
    """

    def __init__(self, plan: Plan, sizes: Mapping[str, int], capacity: int | None,
                 jobs: int) -> None:
        self.plan = plan
        self.names = sorted(s.name for s in plan)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.children: list[list[int]] = [[] for _ in self.names]
        self.inputs = [0] * len(self.names)
        for s in plan:
            i = self.index[s.name]
            self.inputs[i] = len(s.inputs)
            for parent in s.inputs:
                self.children[self.index[parent]].append(i)
        self.sizes = [sizes.get(name, 0) for name in self.names]
        self.capacity = capacity if capacity is not None else sum(self.sizes) + 1
        self.counted = capacity is not None
        self.jobs = max(1, jobs)
        self.roots = [i for i, k in enumerate(self.inputs) if k == 0]

    def ids(self, order: Sequence[str]) -> list[int]:
        return [self.index[name] for name in order]

    def seconds(self, durations: Mapping[str, float]) -> list[float]:
        return [durations[name] for name in self.names]

    def makespan(self, order: Sequence[int], durations: Sequence[float],
                 capacity: int | None = None, gap: float = 0.0, window: float = 0.0) -> float:
        """List-schedule the stages offered in ``order`` (indices); ``inf`` if one never fits.

        ``gap``: seconds between the starts of the stages admitted in one pass; ``window``:
        stages that end within this many seconds of each other are handled in one pass.
        """
        n = len(self.names)
        if not n:
            return 0.0
        rank = [0] * n
        for r, i in enumerate(order):
            rank[i] = r
        sizes, children, waiting = self.sizes, self.children, self.inputs[:]
        ready = sorted(rank[i] for i in self.roots)  # ranks: the list stays in offer order
        free, slots = self.capacity if capacity is None else capacity, self.jobs
        running: list[tuple[float, int]] = []
        now, done = 0.0, 0
        push, pop, insort = heapq.heappush, heapq.heappop, bisect.insort
        while True:
            if ready and slots:
                waits = []
                start = now
                for r in ready:
                    i = order[r]
                    if slots and sizes[i] <= free:  # smaller ones behind a waiting one: backfill
                        free -= sizes[i]
                        slots -= 1
                        push(running, (start + durations[i], i))
                        start += gap  # the executor starts a pass's stages one after another
                    else:
                        waits.append(r)
                ready = waits
            if not running:
                return math.inf  # something can never fit: not a candidate
            now, i = pop(running)
            ended = [i]
            if window:  # the executor handles every exit it finds when it wakes up
                until = now + window
                while running and running[0][0] <= until:
                    now, i = pop(running)
                    ended.append(i)
            done += len(ended)
            if done == n:
                return now
            for i in ended:
                free += sizes[i]
                slots += 1
                for c in children[i]:
                    waiting[c] -= 1
                    if not waiting[c]:
                        insort(ready, rank[c])

    def bound(self, durations: Sequence[float], capacity: int | None = None) -> float:
        """No order finishes sooner: the critical path, memory × time, work over job slots."""
        by_name = dict(zip(self.names, durations, strict=True))
        path = max(critical_paths(self.plan, lambda s: by_name[s.name]).values(), default=0.0)
        memory = self.capacity if capacity is None else capacity
        area = (sum(d * size for d, size in zip(durations, self.sizes, strict=True))
                / memory if self.counted and memory > 0 else 0.0)
        return max(path, area, sum(durations) / self.jobs)

    def perturbed(self, durations: Mapping[str, float], trials: int, spread: float,
                  overhead: float, memory_spread: float, gap: float, window: float,
                  seed: int) -> list[_Trial]:
        """``trials`` seeded variations: each duration moved by ± ``spread`` of it and
        lengthened by 0 to 2 × ``overhead``; the memory (when counted) lowered by shares
        spread evenly from none to ``memory_spread``; a pass's stages ``gap`` apart; ends
        within ``window`` of each other handled together."""
        rng = random.Random(seed)
        exact = self.seconds(durations)
        count = max(1, trials)
        out = []
        for k in range(count):
            seconds = [d * (1.0 + rng.uniform(-spread, spread)) + overhead * rng.uniform(0.0, 2.0)
                       for d in exact]
            memory = self.capacity
            if self.counted:  # never below the largest stage: that would fit no order
                lowered = int(self.capacity * (1.0 - memory_spread * k / max(1, count - 1)))
                memory = max(lowered, min(self.capacity, max(self.sizes, default=0)))
            out.append((seconds, memory, gap, window))
        return out

    def total_makespan(self, order: Sequence[int], trials: Sequence[_Trial],
                       beat: float = math.inf, floors: Sequence[float] = ()) -> float:
        """The sum of ``order``'s makespans over ``trials``; ``inf`` once it exceeds ``beat``.

        ``floors[k]`` bounds the sum of the makespans of trials ``k`` and after from below:
        a candidate already behind after its first trials is given up early.
        """
        total = 0.0
        for k, (seconds, memory, gap, window) in enumerate(trials):
            total += self.makespan(order, seconds, memory, gap, window)
            if floors and k + 1 < len(trials) and total + floors[k + 1] > beat * (1 + 1e-9):
                return math.inf
        return total if total <= beat else math.inf


def simulate(plan: Plan, order: Sequence[str], durations: Mapping[str, float],
             sizes: Mapping[str, int], capacity: int | None, jobs: int) -> float:
    """The makespan of list-scheduling ``plan`` in ``order``, as the memory policy would.

    At every moment the ready stages are offered in ``order``; a stage starts when it fits in
    the free memory and a job slot (smaller ones behind a waiting one may start: backfill).
    ``inf`` when some stage can never fit.
    """
    model = _Model(plan, sizes, capacity, jobs)
    return model.makespan(model.ids(order), model.seconds(durations))


def expected_makespan(plan: Plan, order: Sequence[str], durations: Mapping[str, float],
                      sizes: Mapping[str, int], capacity: int | None, jobs: int, *,
                      trials: int = TRIALS, spread: float = DURATION_SPREAD,
                      overhead: float = STAGE_OVERHEAD, memory_spread: float = MEMORY_SPREAD,
                      gap: float = START_GAP, window: float = END_WINDOW, seed: int = 0) -> float:
    """The mean makespan of :func:`simulate` over ``trials`` perturbed schedules.

    A real run never replays a simulation: stages never end on the dot, the executor spends
    some time around each one and starts the stages of one pass one after another, and on a
    shared machine the memory free for the run moves. So each schedule moves every stage's
    duration by a seeded random share of up to ± ``spread``, adds 0 to 2 × ``overhead``
    seconds to it (``overhead`` on average), starts the stages admitted together ``gap``
    seconds apart, and lowers the memory by a share of up to ``memory_spread`` (evenly
    spread over the schedules). This is the score :func:`best_order` minimises.
    """
    model = _Model(plan, sizes, capacity, jobs)
    schedules = model.perturbed(durations, trials, spread, overhead, memory_spread, gap, window,
                                 seed)
    return model.total_makespan(model.ids(order), schedules) / len(schedules)


def best_order(plan: Plan, heuristic: Sequence[str], durations: Mapping[str, float],
               sizes: Mapping[str, int], capacity: int | None, jobs: int, *,
               budget: float | None = None, samples: int | None = None, seed: int = 0,
               trials: int = TRIALS, spread: float = DURATION_SPREAD,
               overhead: float = STAGE_OVERHEAD, memory_spread: float = MEMORY_SPREAD,
               gap: float = START_GAP, window: float = END_WINDOW) -> list[str]:
    """The heuristic order, or a better one found by a seeded local search in simulation.

    Used when every duration is known. An order that reaches the lower bound with the exact
    durations is kept. Otherwise orders are scored by :func:`expected_makespan`, not by
    one exact simulation: an order tuned to the exact numbers mostly wins through ties
    (which of two stages due at the same instant frees its memory first) and packings that
    need the last free byte, and a real run loses both. The search is local: each of
    ``samples`` candidates (by default ``3000 // stages``, at least 16) swaps two stages of
    the best order so far or moves one, and replaces it when it scores no worse. It stops
    early when the score reaches the (perturbed) lower bound, and never runs longer than
    ``budget`` seconds (by default 0.5 % of the plan's work, at most 0.05 s, so a short run
    barely pays for it). The winner of many comparisons on a few noisy schedules is partly
    just the luckiest, so it is used only if it also beats the heuristic on twice as many
    fresh schedules. Unless the time cap cuts the search short, the same plan and numbers
    always give the same order.
    """
    model = _Model(plan, sizes, capacity, jobs)
    if len(model.names) < 2:
        return list(heuristic)
    exact = model.seconds(durations)
    if budget is None:
        budget = min(0.05, 0.005 * sum(exact))
    deadline = time.monotonic() + budget
    best = model.ids(heuristic)
    if model.makespan(best, exact) <= model.bound(exact) * 1.0001:
        return list(heuristic)
    schedules = model.perturbed(durations, trials, spread, overhead, memory_spread, gap, window,
                                 seed)
    best_total = model.total_makespan(best, schedules)
    if math.isinf(best_total):
        return list(heuristic)  # a stage never fits: no order changes that
    bounds = [model.bound(seconds, memory) for seconds, memory, _, _ in schedules]
    floors = [sum(bounds[k:]) for k in range(len(bounds))]  # of the schedules from k on
    rng = random.Random(seed + 1)
    size = len(best)
    draws = samples if samples is not None else max(16, 3000 // size)
    for _ in range(draws):
        if best_total <= floors[0] * 1.0001 or time.monotonic() > deadline:
            break
        candidate = best[:]
        i, j = rng.randrange(size), rng.randrange(size)
        if rng.random() < 0.5:
            candidate[i], candidate[j] = candidate[j], candidate[i]
        else:
            candidate.insert(j, candidate.pop(i))
        total = model.total_makespan(candidate, schedules, best_total, floors)
        if total <= best_total:
            best, best_total = candidate, total
    heuristic_ids = model.ids(heuristic)
    if best == heuristic_ids:
        return list(heuristic)
    fresh = model.perturbed(durations, 2 * trials, spread, overhead, memory_spread, gap, window,
                            seed + 2)
    if model.total_makespan(best, fresh) >= model.total_makespan(heuristic_ids, fresh):
        return list(heuristic)
    return [model.names[i] for i in best]
