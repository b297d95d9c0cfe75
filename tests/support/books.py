"""Throw-away cookbook modules, each broken in one way, for the cookbook-loading tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from blut_core import CookbookSpec, FootprintModel, FootprintModelSpec, Plan, Recipe, Stage, hookimpl


@attrs.frozen
class Empty:
    pass


class PerRow(FootprintModel):
    """1 MiB plus 1 KiB per row: a cookbook's own footprint model."""

    name = "per-row"

    def check(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> None:
        pass

    def estimate(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> int:
        return (1 << 20) + 1024 * int(drivers.get("rows", 0))


def _plan(_: Empty) -> Plan:
    return Plan.of(Stage.command("only", ["true"]))


class Good:
    """A cookbook that also contributes a footprint model: cookbooks may implement any hook."""

    @hookimpl
    def blut_cookbooks(self) -> Iterator[CookbookSpec]:
        yield CookbookSpec(name="good", summary="works")

    @hookimpl
    def blut_recipes(self) -> Iterator[Recipe]:
        yield Recipe(name="one", summary="one stage", params=Empty, build=_plan)

    @hookimpl
    def blut_footprint_models(self) -> Iterator[FootprintModelSpec]:
        yield FootprintModelSpec(name="per-row", summary="1 MiB + 1 KiB a row", factory=PerRow)


class Raising:
    @hookimpl
    def blut_cookbooks(self) -> Iterator[CookbookSpec]:
        yield CookbookSpec(name="raising", summary="its recipes hook raises")

    @hookimpl
    def blut_recipes(self) -> Iterator[Recipe]:
        raise KeyError("no such table")


class WrongType:
    @hookimpl
    def blut_cookbooks(self) -> Iterator[CookbookSpec]:
        yield CookbookSpec(name="wrongtype", summary="yields a string")

    @hookimpl
    def blut_recipes(self) -> Iterator[object]:
        yield "not a recipe"


class Duplicate:
    """Claims the cookbook name ``good`` under another entry point name."""

    @hookimpl
    def blut_cookbooks(self) -> Iterator[CookbookSpec]:
        yield CookbookSpec(name="dup", summary="registers one recipe twice")

    @hookimpl
    def blut_recipes(self) -> Iterator[Recipe]:
        yield Recipe(name="twice", summary="first", params=Empty, build=_plan)
        yield Recipe(name="twice", summary="second", params=Empty, build=_plan)


class NoSpec:
    @hookimpl
    def blut_recipes(self) -> Iterator[Recipe]:
        yield Recipe(name="orphan", summary="no cookbook", params=Empty, build=_plan)


good, raising, wrongtype, duplicate, nospec = Good(), Raising(), WrongType(), Duplicate(), NoSpec()
