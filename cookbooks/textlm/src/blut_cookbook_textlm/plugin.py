"""The textlm cookbook's hooks: what blut loads for this cookbook at every start.

Kept cheap to import: it names the cookbook and, when blut asks for recipes, imports their
params (:mod:`blut_cookbook_textlm.recipes`, attrs only); numpy comes with the sweep's module
(:mod:`blut_cookbook_textlm.lrsweep`) only when a plan is built or a stage runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import CookbookSpec, Recipe


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    """Registration: the ``textlm`` cookbook."""
    from blut_core import CookbookSpec

    yield CookbookSpec(name="textlm", summary="A character-level language model trained in numpy.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    """Registration: ``textlm:train`` and ``textlm:small``."""
    from blut_cookbook_textlm.recipes import LrSweepParams, SmallParams, build
    from blut_core import Recipe

    yield Recipe(name="train", summary="Train the character model at several learning rates side by "
                 "side (a diverging one is pruned), with checkpoints, perplexity and samples.",
                 params=LrSweepParams, build=build)
    yield Recipe(name="small", summary="The learning-rate sweep with a small model and few steps "
                 "(for tests).", params=SmallParams, build=build)
