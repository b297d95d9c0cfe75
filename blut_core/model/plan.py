"""A Plan: a DAG of stages, validated before anything runs."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from blut_core.errors import PlanError
from blut_core.model.hashing import canonical_json
from blut_core.model.reprs import record_repr
from blut_core.model.stage import Stage

_FIELDS = ("out", "work", "inputs", "params", "attempt", "python")


class _Probe(dict[str, Any]):
    """Stands in for ``{inputs[...]}`` / ``{params[...]}`` while argv is checked."""

    def __init__(self, what: str, keys: Iterable[str]) -> None:
        super().__init__({k: f"<{k}>" for k in keys})
        self.what = what

    def __missing__(self, key: str) -> str:
        raise KeyError(f"{self.what}[{key}]")


def check_placeholders(s: Stage) -> None:
    """Every ``{...}`` in a command stage's argv names something the stage will have."""
    if s.argv is None:
        return
    fields: dict[str, Any] = {"out": "", "work": "", "attempt": 1, "python": "",
                              "inputs": _Probe("inputs", s.inputs),
                              "params": _Probe("params", s.params)}
    for item in s.argv:
        if "{" not in item and "}" not in item:
            continue
        try:
            item.format(**fields)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise PlanError(
                f"stage {s.name!r}: argument {item!r} has a bad placeholder ({exc})",
                hint="use " + ", ".join("{" + f + "}" for f in _FIELDS)
                     + " ({inputs[NAME]} for an input, {params[KEY]} for a param); "
                     "write {{ and }} for literal braces") from None


@attrs.frozen
class Plan:
    """An ordered collection of stages with their dependencies.

    Construct with :meth:`of` (which validates) or directly and call :meth:`validate`.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    stages: tuple[Stage, ...]

    @classmethod
    def of(cls, *stages: Stage | Iterable[Stage]) -> Plan:
        flat: list[Stage] = []
        for s in stages:
            flat.extend([s] if isinstance(s, Stage) else s)
        plan = cls(tuple(flat))
        plan.validate()
        return plan

    @property
    def by_name(self) -> Mapping[str, Stage]:
        return {s.name: s for s in self.stages}

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def validate(self) -> None:
        """Raise :class:`PlanError` naming the stages at fault, or return."""
        if not self.stages:
            raise PlanError("the plan has no stages", hint="a recipe must build at least one stage")
        seen: set[str] = set()
        dupes: set[str] = set()
        for s in self.stages:
            (dupes if s.name in seen else seen).add(s.name)
        if dupes:
            raise PlanError(f"duplicate stage names: {', '.join(sorted(dupes))}",
                            hint="every stage in a plan needs its own name")
        for s in self.stages:
            missing = [i for i in s.inputs if i not in seen]
            if missing:
                raise PlanError(
                    f"stage {s.name!r} takes input from unknown stage(s): {', '.join(missing)}",
                    hint=f"known stages: {', '.join(sorted(seen))}",
                )
            if s.name in s.inputs:
                raise PlanError(f"stage {s.name!r} takes its own output as input (a cycle)")
            if len(set(s.inputs)) != len(s.inputs):
                raise PlanError(f"stage {s.name!r} names the same input twice")
            check_placeholders(s)
            try:
                canonical_json(dict(s.params))
            except (TypeError, ValueError) as exc:
                raise PlanError(f"stage {s.name!r}: params are not plain JSON data: {exc}",
                                hint="use str, int, float (finite), bool, lists and dicts") from None
        cycle = self._find_cycle()
        if cycle:
            raise PlanError(f"the plan has a cycle: {' -> '.join(reversed(cycle))}",
                            hint="a stage cannot depend, directly or not, on itself")

    def _find_cycle(self) -> list[str] | None:
        graph = {s.name: s.inputs for s in self.stages}
        color: dict[str, int] = {}
        stack: list[str] = []

        def visit(n: str) -> list[str] | None:
            color[n] = 1
            stack.append(n)
            for m in graph[n]:
                if color.get(m) == 1:
                    return [*stack[stack.index(m):], m]
                if m not in color and (found := visit(m)):
                    return found
            stack.pop()
            color[n] = 2
            return None

        for name in graph:
            if name not in color and (found := visit(name)):
                return found
        return None

    def topological(self) -> list[Stage]:
        """Stages in dependency order; ties keep the order they were declared in."""
        index = {s.name: i for i, s in enumerate(self.stages)}
        indegree = {s.name: len(s.inputs) for s in self.stages}
        children: dict[str, list[str]] = {s.name: [] for s in self.stages}
        for s in self.stages:
            for i in s.inputs:
                children[i].append(s.name)
        heap = [(index[n], n) for n, d in indegree.items() if d == 0]
        heapq.heapify(heap)
        out: list[Stage] = []
        by_name = self.by_name
        while heap:
            _, n = heapq.heappop(heap)
            out.append(by_name[n])
            for c in children[n]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    heapq.heappush(heap, (index[c], c))
        return out

    def downstream(self, name: str) -> set[str]:
        """Every stage that depends, directly or not, on ``name``."""
        children: dict[str, list[str]] = {s.name: [] for s in self.stages}
        for s in self.stages:
            for i in s.inputs:
                children[i].append(s.name)
        out: set[str] = set()
        todo = list(children[name])
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo.extend(children[n])
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """The plan as written to ``plan.json``."""
        return [s.to_json() for s in self.topological()]
