"""The ``quickstart`` cookbook: small recipes that run on a laptop in seconds."""

from __future__ import annotations

from blut_cookbook_quickstart.wordcount import WordcountParams, build
from blut_core import Cookbook, Recipe

COOKBOOK = Cookbook(
    name="quickstart",
    summary="First steps with blut.",
    recipes=(
        Recipe(name="wordcount", summary="Generate a corpus, count words and bigrams, write a report.",
               params=WordcountParams, build=build),
    ),
)
