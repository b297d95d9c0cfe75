"""The recipes this process can run: every cookbook plugin's, by ``cookbook:recipe``.

A cookbook is a plugin: its ``blut.cookbooks`` entry point names a module of ``@hookimpl``
functions, loaded by the plugin manager after the ``blut.plugins`` group::

    [project.entry-points."blut.cookbooks"]
    quickstart = "blut_cookbook_quickstart.plugin"

``blut_cookbooks`` yields its :class:`~blut_core.model.recipe.CookbookSpec` (name and
summary), ``blut_recipes`` its :class:`~blut_core.model.recipe.Recipe` records; it may
implement any other blut hook too. A cookbook that fails to import, whose hook raises or
yields the wrong record, or whose names are taken, is skipped and recorded with its error.
Recipes are referred to as ``cookbook:recipe``, or by the bare recipe name when unique.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import attrs

from blut_core.errors import ConfigError
from blut_core.host.manager import COOKBOOK_GROUP, BlutPluginManager, PluginRecord
from blut_core.host.registry import call_registration
from blut_core.model.recipe import CookbookSpec, Recipe

__all__ = ["COOKBOOK_GROUP", "CookbookIndex", "RecipeRef"]


@attrs.frozen(kw_only=True)
class RecipeRef:
    """A recipe with the cookbook it came from."""

    cookbook: CookbookSpec
    recipe: Recipe
    distribution: str = "?"
    plugin: str = "?"

    @property
    def qualname(self) -> str:
        return f"{self.cookbook.name}:{self.recipe.name}"


@attrs.frozen
class CookbookIndex:
    """Every recipe the loaded cookbooks register, by qualified name, plus their records."""

    recipes: Mapping[str, RecipeRef]
    cookbooks: Mapping[str, CookbookSpec]
    records: tuple[PluginRecord, ...]

    @property
    def failed(self) -> tuple[PluginRecord, ...]:
        """Cookbooks that are installed but contribute nothing (or less) because they failed."""
        return tuple(r for r in self.records if r.error and not r.disabled)

    @classmethod
    def build(cls, pm: BlutPluginManager) -> CookbookIndex:
        """Ask every plugin's ``blut_cookbooks`` and ``blut_recipes``, in load order."""
        books: dict[str, CookbookSpec] = {}  # by plugin name
        owner: dict[str, str] = {}  # cookbook name -> plugin name
        for impl in pm.hook.blut_cookbooks.get_hookimpls():
            plugin = impl.plugin_name
            specs = call_registration(pm, impl, "blut_cookbooks", CookbookSpec)
            if specs is None:
                continue
            record = pm.record(plugin)
            error = None
            if len(specs) != 1:
                error = f"blut_cookbooks yielded {len(specs)} cookbooks; a plugin is one cookbook"
            elif record is not None and record.group == COOKBOOK_GROUP and specs[0].name != plugin:
                error = f"entry point {plugin!r} declares cookbook {specs[0].name!r}: make them equal"
            elif specs[0].name in owner:
                error = (f"cookbook name {specs[0].name!r} is already taken by "
                         f"{pm.describe(owner[specs[0].name])}")
            if error:
                pm.mark_failed(plugin, error)
                continue
            books[plugin] = specs[0]
            owner[specs[0].name] = plugin
        recipes: dict[str, RecipeRef] = {}
        for impl in pm.hook.blut_recipes.get_hookimpls():
            plugin = impl.plugin_name
            items = call_registration(pm, impl, "blut_recipes", Recipe)
            if items is None:
                continue
            book = books.get(plugin)
            if book is None:
                if not (pm.record(plugin) or PluginRecord(plugin, "?", "?", False)).error:
                    pm.mark_failed(plugin, "blut_recipes yielded recipes, but the plugin declares "
                                           "no cookbook: implement blut_cookbooks")
                continue
            dist = (pm.record(plugin) or PluginRecord(plugin, "?", "?", False)).distribution
            for recipe in items:
                ref = RecipeRef(cookbook=book, recipe=recipe, distribution=dist, plugin=plugin)
                if ref.qualname in recipes:
                    pm.mark_failed(plugin, f"recipe {ref.qualname!r} is registered twice")
                    continue
                recipes[ref.qualname] = ref
        records = tuple(r for r in pm.records if r.kind == "cookbook" or r.name in books)
        return cls(recipes=dict(sorted(recipes.items())),
                   cookbooks={b.name: b for b in books.values()}, records=records)

    def find(self, name: str) -> RecipeRef:
        """Resolve ``cookbook:recipe`` or a unique bare name; suggest close names if unknown."""
        if name in self.recipes:
            return self.recipes[name]
        if ":" not in name:
            matches = [r for r in self.recipes.values() if r.recipe.name == name]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ConfigError(f"recipe name {name!r} is ambiguous",
                                  hint="use one of: " + ", ".join(m.qualname for m in matches))
        by_candidate = {q: q for q in self.recipes}
        by_candidate.update({r.recipe.name: r.qualname for r in self.recipes.values()})
        similar = difflib.get_close_matches(name, list(by_candidate), n=6, cutoff=0.5)
        close = list(dict.fromkeys(by_candidate[m] for m in similar))[:3]
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        else:
            hint = "see `blut recipes list`"
        if self.failed:
            hint += ("; cookbook(s) failed: " + ", ".join(r.name for r in self.failed)
                     + " (see `blut plugins list`)")
        raise ConfigError(f"unknown recipe {name!r}", hint=hint)
