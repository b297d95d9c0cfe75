"""A small cookbook the contract suites run, so that they need no cookbook of yours.

``contract:diamond`` is ``make → (double, words) → join`` plus a command stage copying
``make``'s output: every lineage table gets rows (stages, artifacts, edges, metrics). Loaded
by entry point :data:`ENTRY_POINT`; not installed as a cookbook, so ``blut recipes list``
never shows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata as md
from typing import TYPE_CHECKING

import attrs

from blut_core.host.manager import COOKBOOK_GROUP
from blut_core.host.markers import hookimpl
from blut_core.model.reprs import record_repr

if TYPE_CHECKING:
    from blut_core.model.plan import Plan
    from blut_core.model.recipe import CookbookSpec, Recipe
    from blut_core.process.context import StageContext

ENTRY_POINT = md.EntryPoint(name="contract", value="blut_core.testing.book", group=COOKBOOK_GROUP)


@attrs.frozen(kw_only=True)
class DiamondParams:
    __repr__ = record_repr  # attrs' text, not compiled per class

    n: int = attrs.field(default=50, validator=attrs.validators.ge(1),
                         metadata={"help": "Numbers to make."})
    label: str = attrs.field(default="contract", metadata={"help": "Written into every output."})


def make(ctx: StageContext) -> None:
    """``numbers.json``: 0 .. n-1."""
    numbers = list(range(ctx.params["n"]))
    (ctx.out_dir / "numbers.json").write_text(json.dumps(numbers), encoding="utf-8")
    for step in range(3):
        ctx.log(step=step, loss=1.0 / (step + 1), label=ctx.params["label"])


def double(ctx: StageContext) -> None:
    numbers = json.loads((ctx.input("make") / "numbers.json").read_text(encoding="utf-8"))
    (ctx.out_dir / "doubled.json").write_text(json.dumps([2 * x for x in numbers]), encoding="utf-8")
    ctx.log(step=0, total=float(sum(numbers) * 2))


def words(ctx: StageContext) -> None:
    numbers = json.loads((ctx.input("make") / "numbers.json").read_text(encoding="utf-8"))
    (ctx.out_dir / "words.txt").write_text("\n".join(f"n{x}" for x in numbers) + "\n",
                                           encoding="utf-8")


def join(ctx: StageContext) -> None:
    doubled = json.loads((ctx.input("double") / "doubled.json").read_text(encoding="utf-8"))
    lines = (ctx.input("words") / "words.txt").read_text(encoding="utf-8").split()
    (ctx.out_dir / "join.json").write_text(json.dumps({"label": ctx.params["label"],
                                                       "pairs": list(zip(lines, doubled, strict=True))}),
                                           encoding="utf-8")
    ctx.log(step=0, pairs=len(lines))


def diamond(p: DiamondParams) -> Plan:
    from blut_core.model.footprint import Footprint
    from blut_core.model.plan import Plan
    from blut_core.model.stage import Stage

    small = Footprint.fixed("128M")
    return Plan.of(
        Stage.call("make", make, params={"n": p.n, "label": p.label}, footprint=small),
        Stage.call("double", double, inputs=["make"], footprint=small),
        Stage.call("words", words, inputs=["make"], footprint=small),
        Stage.call("join", join, inputs=["double", "words"], params={"label": p.label},
                   footprint=small),
        Stage.command("copy", ["cp", "{inputs[make]}/numbers.json", "{out}/copy.json"],
                      inputs=["make"], footprint=small),
    )


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    """Registration: the ``contract`` cookbook."""
    from blut_core.model.recipe import CookbookSpec

    yield CookbookSpec(name="contract", summary="What blut's contract suites run.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    """Registration: ``contract:diamond``."""
    from blut_core.model.recipe import Recipe

    yield Recipe(name="diamond", summary="Five small stages that fill every lineage table.",
                 params=DiamondParams, build=diamond)
