"""Cookbooks and recipes, found through the ``blut.cookbooks`` entry-point group.

A :class:`Recipe` is a typed factory: an attrs params class and a ``build(params) -> Plan``
function. A :class:`Cookbook` is a named set of recipes; a distribution declares it with::

    [project.entry-points."blut.cookbooks"]
    quickstart = "blut_cookbook_quickstart:COOKBOOK"

Recipes are referred to as ``cookbook:recipe``, or by the bare recipe name when unique.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.errors import ConfigError, PluginConflictError, PluginError
from blut_core.manager import PluginRecord, dist_of
from blut_core.plan import Plan

if TYPE_CHECKING:
    from importlib import metadata as md

COOKBOOK_GROUP = "blut.cookbooks"


@attrs.frozen(kw_only=True)
class Recipe:
    """A named factory: ``params`` (an attrs class with defaults) → :class:`Plan`."""

    name: str
    summary: str
    params: type[Any]
    build: Callable[[Any], Plan]

    def __attrs_post_init__(self) -> None:
        if not attrs.has(self.params):
            raise TypeError(f"recipe {self.name!r}: params must be an attrs class")


@attrs.frozen(kw_only=True)
class Cookbook:
    """A named collection of recipes shipped by one distribution."""

    name: str
    summary: str
    recipes: tuple[Recipe, ...]


@attrs.frozen(kw_only=True)
class RecipeRef:
    """A recipe with the cookbook it came from."""

    cookbook: Cookbook
    recipe: Recipe
    distribution: str = "?"

    @property
    def qualname(self) -> str:
        return f"{self.cookbook.name}:{self.recipe.name}"


@attrs.frozen
class CookbookIndex:
    """Every discovered recipe, by qualified name, plus the cookbooks that failed."""

    recipes: Mapping[str, RecipeRef]
    records: tuple[PluginRecord, ...]

    @classmethod
    def discover(cls, eps: Iterable[md.EntryPoint] | None = None, *, strict: bool = False) -> CookbookIndex:
        from importlib import metadata as md

        found = md.entry_points(group=COOKBOOK_GROUP) if eps is None else eps
        recipes: dict[str, RecipeRef] = {}
        owners: dict[str, str] = {}
        records: list[PluginRecord] = []
        for ep in sorted(found, key=lambda e: (e.name, e.value)):
            dist_name, dist_version = dist_of(ep)
            rec = PluginRecord(name=ep.name, distribution=dist_name, version=dist_version,
                               builtin=False, module=ep.value)
            try:
                book = ep.load()
                if not isinstance(book, Cookbook):
                    raise TypeError(f"{ep.value} is a {type(book).__name__}, not a Cookbook")
                if book.name != ep.name:
                    raise ValueError(f"entry point {ep.name!r} names cookbook {book.name!r}")
            except Exception as exc:
                if strict:
                    raise PluginError(f"cookbook {ep.name!r} ({rec.distribution}) failed to load: {exc}",
                                      hint="reinstall it, or unset BLUT_STRICT_PLUGINS") from exc
                records.append(rec._replace(error=f"{type(exc).__name__}: {exc}"))
                continue
            records.append(rec)
            for recipe in book.recipes:
                ref = RecipeRef(cookbook=book, recipe=recipe, distribution=rec.distribution)
                if ref.qualname in recipes:
                    raise PluginConflictError("blut.cookbooks", ref.qualname,
                                              owners[ref.qualname], rec.distribution)
                recipes[ref.qualname] = ref
                owners[ref.qualname] = rec.distribution
        return cls(recipes=dict(sorted(recipes.items())), records=tuple(records))

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
        broken = [r for r in self.records if r.error]
        if broken:
            hint += "; cookbook(s) failed to load: " + ", ".join(r.name for r in broken)
        raise ConfigError(f"unknown recipe {name!r}", hint=hint)
