"""Recipes and stage functions for the lineage tests (importable by stage processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from blut_core import CookbookSpec, Plan, Recipe, Stage, hookimpl

if TYPE_CHECKING:
    from blut_core import StageContext


def source(ctx: StageContext) -> None:
    n = int(ctx.params.get("n", 3))
    (ctx.out_dir / "numbers.json").write_text(json.dumps(list(range(n))), encoding="utf-8")
    (ctx.out_dir / "readme.txt").write_text(f"{n} numbers\n", encoding="utf-8")
    ctx.log(count=n)


def scale(ctx: StageContext) -> None:
    numbers = json.loads((ctx.input("source") / "numbers.json").read_text(encoding="utf-8"))
    factor = int(ctx.params.get("factor", 1))
    out = [x * factor for x in numbers]
    (ctx.out_dir / "scaled.json").write_text(json.dumps(out), encoding="utf-8")
    for step, value in enumerate(out):
        ctx.log(step=step, loss=1.0 / (1 + value))


def merge(ctx: StageContext) -> None:
    left = json.loads((ctx.input("left") / "scaled.json").read_text(encoding="utf-8"))
    right = json.loads((ctx.input("right") / "scaled.json").read_text(encoding="utf-8"))
    total = sum(left) + sum(right)
    (ctx.out_dir / "total.json").write_text(json.dumps(total), encoding="utf-8")
    ctx.log(total=total)


def broken(ctx: StageContext) -> None:
    raise RuntimeError("this stage always fails")


@attrs.frozen(kw_only=True)
class MergeParams:
    n: int = 3
    left: int = 2
    right: int = 3


def merge_plan(p: MergeParams) -> Plan:
    """source → (left, right) → merged."""
    return Plan.of(
        Stage.call("source", source, params={"n": p.n}),
        Stage.call("left", scale, inputs=["source"], params={"factor": p.left}),
        Stage.call("right", scale, inputs=["source"], params={"factor": p.right}),
        Stage.call("merged", merge, inputs=["left", "right"]),
    )


@attrs.frozen(kw_only=True)
class Empty:
    pass


def failing_plan(_: Empty) -> Plan:
    return Plan.of(Stage.call("source", source, params={"n": 2}),
                   Stage.call("broken", broken, inputs=["source"]))


RECIPES = (
        Recipe(name="merge", summary="a diamond with a merge", params=MergeParams, build=merge_plan),
        Recipe(name="failing", summary="a stage that fails", params=Empty, build=failing_plan),)


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="lbook", summary="Recipes for the lineage tests.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield from RECIPES
