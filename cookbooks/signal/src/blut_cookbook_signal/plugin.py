"""The signal cookbook's hooks: what blut loads for this cookbook at every start.

Kept cheap to import: it names the cookbook and, when blut asks for recipes, imports their
params (:mod:`blut_cookbook_signal.recipes`, attrs only); numpy comes with the sweep's module
(:mod:`blut_cookbook_signal.sweep`) only when a plan is built or a stage runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import CookbookSpec, Recipe


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    """Registration: the ``signal`` cookbook."""
    from blut_core import CookbookSpec

    yield CookbookSpec(name="signal", summary="A codec sweep over synthetic multichannel EEG.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    """Registration: ``signal:sweep`` and ``signal:tiny``."""
    from blut_cookbook_signal.recipes import SweepParams, TinyParams, build
    from blut_core import Recipe

    yield Recipe(name="sweep", summary="Synthesize EEG, cache its features, train and evaluate codecs "
                 "at several configurations, tabulate them; sized from this machine so that "
                 "admission right-sizes the feature pool and a codec waits for memory.",
                 params=SweepParams, build=build)
    yield Recipe(name="tiny", summary="The codec sweep on a few seconds of 8-channel EEG (for tests).",
                 params=TinyParams, build=build)
