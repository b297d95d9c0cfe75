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

from collections.abc import Mapping

import attrs

from blut_core.errors import ConfigError
from blut_core.host.manager import COOKBOOK_GROUP, BlutPluginManager, PluginRecord
from blut_core.host.registry import call_registration
from blut_core.model.recipe import CookbookSpec, Recipe
from blut_core.model.reprs import record_repr

__all__ = ["COOKBOOK_GROUP", "CookbookIndex", "RecipeRef"]


@attrs.frozen(kw_only=True)
class RecipeRef:
    """A recipe with the cookbook it came from."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    cookbook: CookbookSpec
    recipe: Recipe
    distribution: str = "?"
    plugin: str = "?"

    @property
    def qualname(self) -> str:
        return f"{self.cookbook.name}:{self.recipe.name}"


class CookbookIndex:
    """Every recipe the loaded cookbooks register, by qualified name, plus their records.

    Built by :meth:`build`, it asks every cookbook's ``blut_cookbooks`` at once (names and
    summaries) but a cookbook's ``blut_recipes`` only when its recipes are needed: a
    qualified name (``cookbook:recipe``) given to :meth:`find` asks that cookbook alone, so
    ``blut run`` does not import every other cookbook's params; :attr:`recipes` asks all.
    """

    def __init__(self, recipes: Mapping[str, RecipeRef] | None = None,
                 cookbooks: Mapping[str, CookbookSpec] | None = None,
                 records: tuple[PluginRecord, ...] = (), *,
                 pm: BlutPluginManager | None = None, books: Mapping[str, CookbookSpec] | None = None
                 ) -> None:
        self._pm = pm
        self._books = dict(books or {})  # by plugin name
        self._asked: dict[str, dict[str, RecipeRef]] = {}  # plugin -> its recipes, once asked
        self._recipes = None if recipes is None else dict(recipes)
        self._cookbooks = dict(cookbooks) if cookbooks is not None else \
            {b.name: b for b in self._books.values()}
        self._records = records

    @property
    def cookbooks(self) -> Mapping[str, CookbookSpec]:
        return self._cookbooks

    @property
    def records(self) -> tuple[PluginRecord, ...]:
        """The cookbooks' plugin records, with what their hooks did so far."""
        if self._pm is None:
            return self._records
        return tuple(r for r in self._pm.records if r.kind == "cookbook" or r.name in self._books)

    @property
    def recipes(self) -> Mapping[str, RecipeRef]:
        """Every recipe, asking every cookbook that was not asked yet."""
        if self._recipes is None:
            found: dict[str, RecipeRef] = {}
            for plugin in self._recipe_plugins():
                found.update(self._ask(plugin))
            self._recipes = dict(sorted(found.items()))
        return self._recipes

    @property
    def failed(self) -> tuple[PluginRecord, ...]:
        """Cookbooks that are installed but contribute nothing (or less) because they failed."""
        return tuple(r for r in self.records if r.error and not r.disabled)

    @classmethod
    def build(cls, pm: BlutPluginManager) -> CookbookIndex:
        """Ask every plugin's ``blut_cookbooks``, in load order (``blut_recipes`` later)."""
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
        index = cls(pm=pm, books=books)
        if pm.strict:  # nothing broken is tolerated: ask every cookbook now
            index.recipes  # noqa: B018
        return index

    def _recipe_plugins(self) -> list[str]:
        """The plugins that implement ``blut_recipes``, in load order."""
        if self._pm is None:
            return []
        return [impl.plugin_name for impl in self._pm.hook.blut_recipes.get_hookimpls()]

    def _ask(self, plugin: str) -> dict[str, RecipeRef]:
        """The recipes ``plugin``'s ``blut_recipes`` yields (asked once)."""
        if plugin in self._asked or self._pm is None:
            return self._asked.get(plugin, {})
        pm = self._pm
        found: dict[str, RecipeRef] = {}
        self._asked[plugin] = found
        impl = next((i for i in pm.hook.blut_recipes.get_hookimpls() if i.plugin_name == plugin), None)
        items = None if impl is None else call_registration(pm, impl, "blut_recipes", Recipe)
        if items is None:
            return found
        book = self._books.get(plugin)
        if book is None:
            if not (pm.record(plugin) or PluginRecord(plugin, "?", "?", False)).error:
                pm.mark_failed(plugin, "blut_recipes yielded recipes, but the plugin declares "
                                       "no cookbook: implement blut_cookbooks")
            return found
        dist = (pm.record(plugin) or PluginRecord(plugin, "?", "?", False)).distribution
        for recipe in items:
            ref = RecipeRef(cookbook=book, recipe=recipe, distribution=dist, plugin=plugin)
            if ref.qualname in found:
                pm.mark_failed(plugin, f"recipe {ref.qualname!r} is registered twice")
                continue
            found[ref.qualname] = ref
        return found

    def find(self, name: str) -> RecipeRef:
        """Resolve ``cookbook:recipe`` or a unique bare name; suggest close names if unknown."""
        if self._recipes is None and ":" in name:  # ask that cookbook alone
            book = name.split(":", 1)[0]
            plugin = next((p for p, b in self._books.items() if b.name == book), None)
            if plugin is not None and name in self._ask(plugin):
                return self._asked[plugin][name]
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
        import difflib  # only for a recipe not found

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
