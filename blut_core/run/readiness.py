"""Readiness: which stages may be offered now, kept up to date as outcomes arrive.

Counting each stage's unmet inputs once per outcome, instead of re-scanning the plan on
every pass, keeps a loop turn cheap; the order ready stages are offered in is computed once,
while the first stages run (see docs/executor.md).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING

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
        self._unsettled = False  # a stage failed or was pruned: its downstream needs settling
        #: stages whose inputs are all ok and that have no outcome yet: the only ones
        #: :meth:`ready` looks at, so a loop turn costs what is open, not the whole plan
        self._open = {s.name for s in order if not self._unmet[s.name]}
        self._by_name = {s.name: s for s in order}
        #: ``_open`` in priority order, once ordered; stages that left it are skipped, and
        #: it is ordered again only when a stage joins it
        self._sorted: list[str] | None = None

    def settled(self, name: str, newly_ok: bool, *, failed: bool) -> None:
        """Stage ``name`` has an outcome: its dependents have one input fewer to wait for."""
        self._open.discard(name)
        if newly_ok:
            for d in self._dependents.get(name, ()):
                self._unmet[d] -= 1
                if not self._unmet[d]:
                    self._open.add(d)
                    self._sorted = None
        elif failed:
            self._unsettled = True

    def blocked(self, outcomes: Mapping[str, StageOutcome],
                running: Collection[str]) -> Iterator[StageOutcome]:
        """Outcomes of the stages a failed or pruned input blocks (empty unless one failed)."""
        if not self._unsettled:
            return
        self._unsettled = False
        for s in self.order:
            if s.name in outcomes or s.name in running:
                continue
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
        rank = critical_paths(self.plan, self.policy.duration_hint)
        ordered = sorted(self.order, key=lambda s: (-rank[s.name], -self.policy.size_hint(s)))
        durations = {s.name: self.policy.duration_hint(s) for s in self.order}
        if len(ordered) <= PLAN_SEARCH_MAX_STAGES and all(
                d is not None for d in durations.values()):
            view = self.policy.view()
            names = best_order(self.plan, [s.name for s in ordered],
                               {n: float(d or 0.0) for n, d in durations.items()},
                               {s.name: self.policy.size_hint(s) for s in self.order},
                               view.capacity, view.jobs or len(ordered))
            by_name = self.plan.by_name
            ordered = [by_name[n] for n in names]
        return ordered

    @functools.cached_property
    def _rank(self) -> dict[str, int]:
        return {s.name: i for i, s in enumerate(self.by_priority)}

    def ready(self, outcomes: Mapping[str, StageOutcome], running: Collection[str],
              ending: Collection[str], not_before: Mapping[str, float]) -> list[Stage]:
        """Stages whose inputs are done, in priority order (ordered once two compete, or
        while the first stages run)."""
        now = time.time()
        by_name, is_open = self._by_name, self._open
        if self._sorted is None:
            if len(is_open) > 1 or "by_priority" in self.__dict__:
                rank = self._rank  # two compete: the priority order decides (computed once)
                self._sorted = sorted(is_open, key=rank.__getitem__)
            names: Collection[str] = self._sorted if self._sorted is not None else is_open
        else:
            if len(self._sorted) > 2 * len(is_open) + 16:  # mostly stages that left: drop them
                self._sorted = [n for n in self._sorted if n in is_open]
            names = self._sorted
        return [by_name[n] for n in names
                if n in is_open and n not in outcomes and n not in running and n not in ending
                and not_before.get(n, 0.0) <= now]
