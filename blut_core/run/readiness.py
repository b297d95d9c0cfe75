"""Readiness: which stages may be offered now, kept up to date as outcomes arrive.

Counting each stage's unmet inputs once per outcome, instead of re-scanning the plan on
every pass, keeps a loop turn cheap; the order ready stages are offered in is computed once,
while the first stages run (see docs/executor.md). The ready set is then kept in that order
(a stage that joins it is inserted in place) and offered lazily: a turn costs the stages the
policy looks at, not every stage that is ready.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, overload

from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.run.scheduling import SchedulingPolicy, best_order, critical_paths

if TYPE_CHECKING:
    from blut_core.model.plan import Plan
    from blut_core.model.stage import Stage

PLAN_SEARCH_MAX_STAGES = 150  # above this, only the heuristic order (the search is O(n²))


class Readiness:
    """The DAG's bookkeeping for one run: unmet inputs, blocked branches, priority order."""

    def __init__(self, plan: Plan, order: list[Stage], policy: SchedulingPolicy) -> None:
        self.plan = plan
        self.order = order
        self.policy = policy
        self._unmet = {s.name: len(set(s.inputs)) for s in order}  # inputs not yet ok
        self._dependents: dict[str, list[str]] = {s.name: [] for s in order}
        for s in order:
            for i in set(s.inputs):
                self._dependents[i].append(s.name)
        self._topo = {s.name: i for i, s in enumerate(order)}
        #: (plan position, name) of the dependents of stages that failed or were pruned: the
        #: only stages :meth:`blocked` looks at, in plan order
        self._blocking: list[tuple[int, str]] = []
        #: stages whose inputs are all ok and that have no outcome yet: the only ones
        #: :meth:`ready` looks at, so a loop turn costs what is open, not the whole plan
        self._open = {s.name for s in order if not self._unmet[s.name]}
        self._by_name = {s.name: s for s in order}
        #: ``_open`` in priority order, once ordered: a stage that joins is inserted in place;
        #: every name before ``_head`` has left ``_open`` (stages that left are skipped)
        self._sorted: list[str] | None = None
        self._head = 0
        #: stages that joined ``_open`` since :meth:`joined` last handed them out
        self._joined = [s.name for s in order if not self._unmet[s.name]]

    def settled(self, name: str, newly_ok: bool, *, failed: bool) -> None:
        """Stage ``name`` has an outcome: its dependents have one input fewer to wait for."""
        self._open.discard(name)
        if newly_ok:
            for d in self._dependents.get(name, ()):
                self._unmet[d] -= 1
                if not self._unmet[d]:
                    self._open.add(d)
                    self._joined.append(d)
                    if self._sorted is not None:
                        bisect.insort(self._sorted, d, lo=self._head, key=self._rank.__getitem__)
        elif failed:
            topo, blocking = self._topo, self._blocking
            for d in self._dependents.get(name, ()):
                heapq.heappush(blocking, (topo[d], d))

    def blocked(self, outcomes: Mapping[str, StageOutcome],
                running: Collection[str]) -> Iterator[StageOutcome]:
        """Outcomes of the stages a failed or pruned input blocks, in plan order (empty unless
        one failed). Only the failed stages' dependents are looked at; record each outcome
        before reading the next, so that what it blocks in turn follows in the same pass."""
        blocking, by_name = self._blocking, self._by_name
        last = None
        while blocking:
            _, name = heapq.heappop(blocking)
            if name == last or name in outcomes or name in running:
                continue
            last = name
            s = by_name[name]
            bad = [i for i in s.inputs if i in outcomes and not outcomes[i].ok]
            if bad:
                pruned = any(outcomes[i].state is StageState.PRUNED for i in bad)
                state = StageState.PRUNED if pruned else StageState.UPSTREAM_FAILED
                yield StageOutcome(
                    stage=s.name, attempt=0, state=state,
                    classification=Classification.PRUNED if pruned else Classification.ERROR,
                    error=f"input {bad[0]!r} {outcomes[bad[0]].state.value}")

    def prioritize(self) -> None:
        """Compute the priority order now (cheap to call again)."""
        self.by_priority  # noqa: B018

    @functools.cached_property
    def by_priority(self) -> list[Stage]:
        """Every stage in the order it is offered when ready (see docs/executor.md).

        Critical path first, then largest footprint (:func:`critical_paths`). When every
        stage's duration is known and the plan is small, orders are also tried in
        simulation (:func:`best_order`) and the shortest schedule is used.
        """
        durations = {s.name: self.policy.duration_hint(s) for s in self.order}  # asked once
        sizes = {s.name: self.policy.size_hint(s) for s in self.order}
        rank = critical_paths(self.plan, lambda s: durations[s.name] if s.name in durations
                              else self.policy.duration_hint(s))
        ordered = sorted(self.order, key=lambda s: (-rank[s.name], -sizes[s.name]))
        if len(ordered) <= PLAN_SEARCH_MAX_STAGES and all(
                d is not None for d in durations.values()):
            view = self.policy.view()
            names = best_order(self.plan, [s.name for s in ordered],
                               {n: float(d or 0.0) for n, d in durations.items()},
                               sizes, view.capacity, view.jobs or len(ordered))
            by_name = self.plan.by_name
            ordered = [by_name[n] for n in names]
        return ordered

    @functools.cached_property
    def _rank(self) -> dict[str, int]:
        return {s.name: i for i, s in enumerate(self.by_priority)}

    def joined(self, outcomes: Mapping[str, StageOutcome]) -> list[Stage]:
        """Stages that became ready since the last call, in priority order: each stage is
        handed out once a run (the executor looks each up in the cache once)."""
        if not self._joined:
            return []
        names, self._joined = self._joined, []
        names = [n for n in names if n in self._open and n not in outcomes]
        if len(names) > 1:
            names.sort(key=self._rank.__getitem__)
        by_name = self._by_name
        return [by_name[n] for n in names]

    def ready(self, outcomes: Mapping[str, StageOutcome], running: Collection[str],
              ending: Collection[str], not_before: Mapping[str, float]) -> Offered:
        """Stages whose inputs are done, in priority order (ordered once two compete, or
        while the first stages run), found as the caller asks for them.

        The result reads ``outcomes``, ``running``, ``ending`` and the ready set as they are
        when it is walked: walk it before acting on what it gave.
        """
        is_open = self._open
        if not is_open:
            return Offered(())
        if self._sorted is None:
            if len(is_open) <= 1 and "by_priority" not in self.__dict__:
                return Offered(self._eligible(tuple(is_open), 0, outcomes, running, ending,
                                              not_before))
            self._sorted = sorted(is_open, key=self._rank.__getitem__)  # computed once
            self._head = 0
        names, head = self._sorted, self._head
        while head < len(names) and names[head] not in is_open:  # stages that left the front
            head += 1
        if len(names) - head > 2 * len(is_open) + 16:  # mostly stages that left: drop them
            names = self._sorted = [n for n in names[head:] if n in is_open]
            head = 0
        self._head = head
        return Offered(self._eligible(names, head, outcomes, running, ending, not_before))

    def _eligible(self, names: Sequence[str], head: int, outcomes: Mapping[str, StageOutcome],
                  running: Collection[str], ending: Collection[str],
                  not_before: Mapping[str, float]) -> Iterator[Stage]:
        now = time.time()
        by_name, is_open = self._by_name, self._open
        for i in range(head, len(names)):
            n = names[i]
            if n in is_open and n not in outcomes and n not in running and n not in ending \
                    and (not not_before or not_before.get(n, 0.0) <= now):
                yield by_name[n]


class Offered(Sequence["Stage"]):
    """Ready stages in priority order, taken from the ready set only as far as they are
    read: a policy that starts two stages reads two (and those it skips), not all of them."""

    __slots__ = ("_got", "_source")

    def __init__(self, source: Iterable[Stage]) -> None:
        self._source: Iterator[Stage] | None = iter(source)
        self._got: list[Stage] = []

    def _fill(self, upto: int | None = None) -> None:
        """Take stages until ``upto`` are known (``None``: all of them)."""
        source, got = self._source, self._got
        if source is None:
            return
        for s in source:
            got.append(s)
            if upto is not None and len(got) >= upto:
                return
        self._source = None

    def __iter__(self) -> Iterator[Stage]:
        got, i = self._got, 0
        while True:
            if i < len(got):
                yield got[i]
                i += 1
                continue
            source = self._source
            if source is None:
                return
            s = next(source, None)
            if s is None:
                self._source = None
                return
            got.append(s)

    def __len__(self) -> int:
        self._fill()
        return len(self._got)

    def __bool__(self) -> bool:
        self._fill(1)
        return bool(self._got)

    @overload
    def __getitem__(self, index: int) -> Stage: ...

    @overload
    def __getitem__(self, index: slice) -> list[Stage]: ...

    def __getitem__(self, index: int | slice) -> Stage | list[Stage]:
        if isinstance(index, slice):
            stop = index.stop
            ok = (index.start or 0) >= 0 and stop is not None and stop >= 0
            self._fill(stop if ok else None)
            return self._got[index]
        self._fill(index + 1 if index >= 0 else None)
        return self._got[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Offered):
            other = list(other)
        return isinstance(other, list) and list(self) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Offered({list(self)!r})"
