"""Recipes the benchmarks run (found through a dist-info the benchmark puts on PYTHONPATH)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import attrs

from blut_core import CookbookSpec, Footprint, Plan, Recipe, Stage, hookimpl


def noop(ctx: Any) -> None:
    return None


def sleep(ctx: Any) -> None:
    time.sleep(float(ctx.params["seconds"]))


@attrs.frozen(kw_only=True)
class N:
    n: int = 200
    tag: str = ""


def commands(p: N) -> Plan:
    return Plan.of(*(Stage.command(f"c{i}", ["true"], cache=False, params={"tag": p.tag})
                     for i in range(p.n)))


def pythons(p: N) -> Plan:
    return Plan.of(*(Stage.call(f"p{i}", noop, cache=False, params={"tag": p.tag})
                     for i in range(p.n)))


def chain(p: N) -> Plan:
    return Plan.of(*(Stage.call(f"s{i}", noop, cache=False, params={"tag": p.tag},
                                inputs=[f"s{i - 1}"] if i else [])
                     for i in range(p.n)))


@attrs.frozen(kw_only=True)
class MemDag:
    usable: int = 20 << 30   # bytes the benchmark measured as bookable
    scale: float = 1.0       # seconds per duration unit
    tag: str = ""


#: (name, share of usable memory, duration units, inputs)
MEMDAG = [
    ("load", 0.10, 1.0, []),
    ("a1", 0.45, 2.0, ["load"]), ("a2", 0.30, 1.5, ["load"]), ("a3", 0.30, 1.0, ["load"]),
    ("a4", 0.25, 2.0, ["load"]), ("a5", 0.20, 1.0, ["load"]), ("a6", 0.40, 1.5, ["load"]),
    ("b1", 0.35, 1.0, ["a1"]), ("b2", 0.15, 2.0, ["a2", "a3"]), ("b3", 0.50, 1.0, ["a4"]),
    ("b4", 0.20, 1.5, ["a5", "a6"]), ("b5", 0.10, 2.0, ["a6"]),
    ("c1", 0.30, 1.0, ["b1", "b2"]), ("c2", 0.25, 1.5, ["b3", "b4", "b5"]),
    ("done", 0.05, 0.5, ["c1", "c2"]),
]


def _wide() -> list[tuple[str, float, float, list[str]]]:
    """A prep stage, 24 stages of varied footprint and duration, and a merge."""
    import random

    rng = random.Random(7)
    middle = [(f"w{i:02d}", round(rng.uniform(0.08, 0.45), 2), round(rng.uniform(0.4, 2.0), 1),
               ["prep"]) for i in range(24)]
    return [("prep", 0.05, 0.3, []), *middle,
            ("merge", 0.10, 0.3, [name for name, _, _, _ in middle])]


#: the memory-bound DAG: Σ memory × time is far above its critical path
WIDE = _wide()


def memdag(p: MemDag) -> Plan:
    return _sleepers(MEMDAG, p)


def wide(p: MemDag) -> Plan:
    return _sleepers(WIDE, p)


def _sleepers(spec: list[tuple[str, float, float, list[str]]], p: MemDag) -> Plan:
    return Plan.of(*(Stage.call(name, sleep, cache=False, inputs=inputs,
                                params={"seconds": units * p.scale, "tag": p.tag},
                                footprint=Footprint.fixed(int(share * p.usable)),
                                expected_seconds=units * p.scale)
                     for name, share, units, inputs in spec))


RECIPES = (
    Recipe(name="commands", summary="n no-op command stages", params=N, build=commands),
    Recipe(name="pythons", summary="n no-op Python stages", params=N, build=pythons),
    Recipe(name="chain", summary="a chain of n no-op Python stages", params=N, build=chain),
    Recipe(name="memdag", summary="a DAG bound by its critical path and memory", params=MemDag,
           build=memdag),
    Recipe(name="wide", summary="a memory-bound DAG", params=MemDag, build=wide),
)


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="benchbook", summary="Benchmark recipes.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield from RECIPES
