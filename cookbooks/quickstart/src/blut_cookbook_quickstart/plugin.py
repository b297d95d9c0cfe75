"""The quickstart cookbook's hooks: what blut loads for this cookbook at every start.

Kept cheap to import: it names the cookbook and imports a recipe's module only when blut
asks for recipes, so ``blut --help`` costs nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import CookbookSpec, Recipe


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    """Registration: the ``quickstart`` cookbook."""
    from blut_core import CookbookSpec

    yield CookbookSpec(name="quickstart", summary="First steps with blut.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    """Registration: ``quickstart:wordcount``."""
    from blut_cookbook_quickstart.wordcount import WordcountParams, build
    from blut_core import Recipe

    yield Recipe(name="wordcount", summary="Generate a corpus, count words and bigrams, write a report.",
                 params=WordcountParams, build=build)
