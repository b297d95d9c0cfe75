"""Recipes for the Ray launcher's end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import attrs

from blut_core import CookbookSpec, Footprint, Plan, Recipe, Stage, StageContext, hookimpl


def hold(ctx: StageContext) -> None:
    """Hold 32 MiB for ``seconds``."""
    block = bytearray(32 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(float(ctx.params.get("seconds", 0.0)))
    (ctx.out_dir / "done.txt").write_text("done", encoding="utf-8")


@attrs.frozen(kw_only=True)
class SpreadParams:
    stages: int = 2
    seconds: float = 20.0


def spread(p: SpreadParams) -> Plan:
    return Plan.of(*(Stage.call(f"s{i}", hold, cache=False, params={"seconds": p.seconds},
                                footprint=Footprint.fixed("128M"))
                     for i in range(p.stages)))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="raybook", summary="Recipes for the Ray launcher's tests.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="spread", summary="stages over the nodes", params=SpreadParams, build=spread)
