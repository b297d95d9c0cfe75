"""The registry: typed records from registration hooks, attributed to their plugin.

Each kind is collected lazily, once, the first time it is asked for, so ``blut --help``
pays only for commands. Duplicate names raise :class:`PluginConflictError` naming both
providers.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from blut_core.errors import PluginConflictError, PluginError

if TYPE_CHECKING:
    import click

    from blut_core.manager import BlutPluginManager
    from blut_core.records import (
        ContainmentSpec,
        FootprintModelSpec,
        LauncherSpec,
        LineageSinkSpec,
    )

T = TypeVar("T")


class Provided(NamedTuple, Generic[T]):
    """A record and the plugin that registered it."""

    item: T
    plugin: str


def collect(pm: BlutPluginManager, hook_name: str, kind: type[T] | tuple[type, ...],
            name_of: Callable[[T], str]) -> dict[str, Provided[T]]:
    """Call every implementation of a registration hook and index what it yields."""
    found: dict[str, Provided[T]] = {}
    caller = getattr(pm.hook, hook_name)
    # pluggy calls the last registered first; registration order is ours, so walk it as is.
    for impl in caller.get_hookimpls():
        try:
            items = list(impl.function() or ())
        except Exception as exc:
            raise PluginError(
                f"plugin {pm.describe(impl.plugin_name)} failed in {hook_name}: {exc}",
                hint="disable it with BLUT_DISABLE_PLUGINS, or report it to its authors",
            ) from exc
        for item in items:
            if not isinstance(item, kind):
                raise PluginError(
                    f"plugin {pm.describe(impl.plugin_name)} yielded "
                    f"{type(item).__name__} from {hook_name}",
                    hint="please report this to the plugin's authors",
                )
            record = typing.cast("T", item)
            name = name_of(record)
            if name in found:
                raise PluginConflictError(hook_name, name, pm.describe(found[name].plugin),
                                          pm.describe(impl.plugin_name))
            found[name] = Provided(record, impl.plugin_name)
    return dict(sorted(found.items()))


class Registry:
    """What this process has installed, by kind and name."""

    def __init__(self, pm: BlutPluginManager) -> None:
        self._pm = pm

    @functools.cached_property
    def commands(self) -> Mapping[str, Provided[click.Command]]:
        import click

        return collect(self._pm, "blut_commands", click.Command, lambda c: c.name or "")

    @functools.cached_property
    def launchers(self) -> Mapping[str, Provided[LauncherSpec]]:
        from blut_core.records import LauncherSpec

        return collect(self._pm, "blut_launchers", LauncherSpec, lambda s: s.name)

    @functools.cached_property
    def containments(self) -> Mapping[str, Provided[ContainmentSpec]]:
        from blut_core.records import ContainmentSpec

        return collect(self._pm, "blut_containments", ContainmentSpec, lambda s: s.name)

    @functools.cached_property
    def footprint_models(self) -> Mapping[str, Provided[FootprintModelSpec]]:
        from blut_core.records import FootprintModelSpec

        return collect(self._pm, "blut_footprint_models", FootprintModelSpec, lambda s: s.name)

    @functools.cached_property
    def lineage_sinks(self) -> Mapping[str, Provided[LineageSinkSpec]]:
        from blut_core.records import LineageSinkSpec

        return collect(self._pm, "blut_lineage_sinks", LineageSinkSpec, lambda s: s.name)

    def require(self, kind: str, name: str) -> Any:
        """The record ``name`` of ``kind`` (e.g. ``"launchers"``), or a helpful PluginError."""
        table: Mapping[str, Provided[Any]] = getattr(self, kind)
        if name in table:
            return table[name].item
        label = kind.removesuffix("s").replace("_", " ")
        failed = [r for r in self._pm.records if r.error]
        hint = f"available: {', '.join(table) or 'none'}"
        if failed:
            hint = (f"plugin(s) failed to load: "
                    f"{', '.join(self._pm.describe(r.name) for r in failed)}; "
                    f"run `blut plugins list`. " + hint)
        raise PluginError(f"no {label} named {name!r} is installed", hint=hint)
