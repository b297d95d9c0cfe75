"""The registry: typed records from registration hooks, attributed to their plugin.

Each kind is collected lazily, once, the first time it is asked for, so ``blut --help``
pays only for commands. Duplicate names raise :class:`PluginConflictError` naming both
providers.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from blut_core.errors import PluginConflictError, PluginError

if TYPE_CHECKING:
    import click
    from pluggy import HookImpl

    from blut_core.host.manager import BlutPluginManager
    from blut_core.host.records import (
        ContainmentSpec,
        FootprintModelSpec,
        LauncherSpec,
        LineageSinkSpec,
        ReportSpec,
        SchedulerSpec,
    )

T = TypeVar("T")


class Provided(NamedTuple, Generic[T]):
    """A record and the plugin that registered it."""

    item: T
    plugin: str


def call_registration(pm: BlutPluginManager, impl: HookImpl, hook_name: str,
                      kind: type[T] | tuple[type, ...]) -> list[T] | None:
    """What one plugin's registration hook yields, or ``None`` when it failed.

    A hook that raises or yields something other than ``kind`` marks its plugin failed (with
    the error, shown by ``blut plugins list``) and contributes nothing; under
    ``BLUT_STRICT_PLUGINS=1`` that raises instead.
    """
    try:
        items = list(typing.cast("Iterable[Any]", impl.function() or ()))
    except Exception as exc:
        pm.mark_failed(impl.plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
        return None
    wrong = [i for i in items if not isinstance(i, kind)]
    if wrong:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        pm.mark_failed(impl.plugin_name, f"{hook_name} yielded a {type(wrong[0]).__name__}, "
                                         f"not a {expected}")
        return None
    return typing.cast("list[T]", items)


def collect(pm: BlutPluginManager, hook_name: str, kind: type[T] | tuple[type, ...],
            name_of: Callable[[T], str]) -> dict[str, Provided[T]]:
    """Call every implementation of a registration hook and index what it yields.

    A name yielded twice keeps its first provider; the second is marked failed with a message
    that names both (fatal under ``BLUT_STRICT_PLUGINS=1``, as every plugin failure is).
    """
    found: dict[str, Provided[T]] = {}
    caller = getattr(pm.hook, hook_name)
    # pluggy calls the last registered first; registration order is ours, so walk it as is.
    for impl in caller.get_hookimpls():
        for record in call_registration(pm, impl, hook_name, kind) or ():
            name = name_of(record)
            if name in found:
                if pm.strict:
                    raise PluginConflictError(hook_name, name, pm.describe(found[name].plugin),
                                              pm.describe(impl.plugin_name))
                pm.mark_failed(impl.plugin_name, f"{hook_name}: {name!r} is already provided by "
                                                 f"{pm.describe(found[name].plugin)}")
                continue
            found[name] = Provided(record, impl.plugin_name)
    return dict(sorted(found.items()))


class Registry:
    """What this process has installed, by kind and name."""

    def __init__(self, pm: BlutPluginManager) -> None:
        self._pm = pm

    @functools.cached_property
    def command_names(self) -> Mapping[str, Provided[click.Command]]:
        """What ``blut_commands`` yields, by name: a lazy command (:mod:`.commands`) is not
        imported yet."""
        import click

        return collect(self._pm, "blut_commands", click.Command, lambda c: c.name or "")

    @functools.cached_property
    def commands(self) -> Mapping[str, Provided[click.Command]]:
        """Every command, each lazy one imported; one that fails to import is left out and
        its plugin marked failed."""
        found: dict[str, Provided[click.Command]] = {}
        for name in self.command_names:
            try:
                provided = self.command(name)
            except PluginError:
                if self._pm.strict:
                    raise
                continue
            if provided is not None:
                found[name] = provided
        return found

    def command(self, name: str) -> Provided[click.Command] | None:
        """The command ``name`` (``None``: no plugin registers it), importing only its own
        module when it is lazy; a :class:`PluginError` when that import fails."""
        from blut_core.host.commands import LazyCommand

        provided = self.command_names.get(name)
        if provided is None or not isinstance(provided.item, LazyCommand):
            return provided
        try:
            return Provided(provided.item.load(), provided.plugin)
        except Exception as exc:
            error = f"command {name!r} failed to load: {type(exc).__name__}: {exc}"
            self._pm.mark_failed(provided.plugin, error)
            raise PluginError(f"{self._pm.describe(provided.plugin)}: {error}",
                              hint="reinstall that distribution, or disable it with "
                                   "BLUT_DISABLE_PLUGINS") from exc

    @functools.cached_property
    def launchers(self) -> Mapping[str, Provided[LauncherSpec]]:
        from blut_core.host.records import LauncherSpec

        return collect(self._pm, "blut_launchers", LauncherSpec, lambda s: s.name)

    @functools.cached_property
    def containments(self) -> Mapping[str, Provided[ContainmentSpec]]:
        from blut_core.host.records import ContainmentSpec

        return collect(self._pm, "blut_containments", ContainmentSpec, lambda s: s.name)

    @functools.cached_property
    def footprint_models(self) -> Mapping[str, Provided[FootprintModelSpec]]:
        from blut_core.host.records import FootprintModelSpec

        return collect(self._pm, "blut_footprint_models", FootprintModelSpec, lambda s: s.name)

    @functools.cached_property
    def lineage_sinks(self) -> Mapping[str, Provided[LineageSinkSpec]]:
        from blut_core.host.records import LineageSinkSpec

        return collect(self._pm, "blut_lineage_sinks", LineageSinkSpec, lambda s: s.name)

    @functools.cached_property
    def reports(self) -> Mapping[str, Provided[ReportSpec]]:
        from blut_core.host.records import ReportSpec

        return collect(self._pm, "blut_reports", ReportSpec, lambda s: s.name)

    @functools.cached_property
    def schedulers(self) -> Mapping[str, Provided[SchedulerSpec]]:
        from blut_core.host.records import SchedulerSpec

        return collect(self._pm, "blut_schedulers", SchedulerSpec, lambda s: s.name)

    def collect_all(self) -> None:
        """Ask every registration hook now, so that each plugin's failures are on record."""
        for kind in ("commands", "launchers", "containments", "footprint_models", "lineage_sinks",
                     "reports", "schedulers"):
            getattr(self, kind)

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
