"""Recipes for the Slurm launcher's end-to-end tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import attrs

from blut_core import CookbookSpec, Footprint, Plan, Recipe, Stage, StageContext, hookimpl


def hog(ctx: StageContext) -> None:
    """Touch ``mb`` MiB and hold them ``seconds``; write the node it ran on."""
    block = bytearray(int(ctx.params.get("mb", 64)) << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(float(ctx.params.get("seconds", 0.0)))
    node = os.environ.get("SLURMD_NODENAME", "?")
    (ctx.out_dir / "node.txt").write_text(node, encoding="utf-8")


@attrs.frozen(kw_only=True)
class LiarParams:
    mb: int = 200
    declared: str = "96M"


def liar(p: LiarParams) -> Plan:
    """One stage that uses far more than it declares."""
    return Plan.of(Stage.call("liar", hog, cache=False, params={"mb": p.mb},
                              footprint=Footprint.fixed(p.declared)))


@attrs.frozen(kw_only=True)
class SpreadParams:
    stages: int = 4
    seconds: float = 4.0
    tag: str = ""


def spread(p: SpreadParams) -> Plan:
    """Independent stages that each hold a little memory a while."""
    return Plan.of(*(Stage.call(f"s{i}", hog, cache=False,
                                params={"mb": 32, "seconds": p.seconds, "tag": p.tag},
                                footprint=Footprint.fixed("128M"))
                     for i in range(p.stages)))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="slurmbook", summary="Recipes for the Slurm launcher's tests.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="liar", summary="a stage that lies about its memory", params=LiarParams, build=liar)
    yield Recipe(name="spread", summary="stages over the nodes", params=SpreadParams, build=spread)
