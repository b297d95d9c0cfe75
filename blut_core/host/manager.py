"""The plugin manager: one loader for built-in plugins, third-party plugins and cookbooks.

Plugins are entry points of the ``blut.plugins`` group, loaded in a deterministic order
(built-ins first, then by name); cookbooks, entry points of ``blut.cookbooks``, are plugins
too and load after them. A plugin that fails to import, or whose registration hook raises
or yields the wrong thing, is skipped and recorded with its error (shown by ``blut plugins
list``); it is fatal when it is essential, under ``BLUT_STRICT_PLUGINS=1``, or when a run
needs what it would have provided.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, NamedTuple

import pluggy

from blut_core.errors import PluginError
from blut_core.host import hookspecs
from blut_core.host.markers import PROJECT

if TYPE_CHECKING:
    from importlib import metadata as md
    from pathlib import Path
    from typing import TypeAlias

    from pluggy import HookimplOpts

    from blut_core.host.entrypoints import CachedEntryPoint

    EntryPoint: TypeAlias = md.EntryPoint | CachedEntryPoint

ENTRY_POINT_GROUP = "blut.plugins"
COOKBOOK_GROUP = "blut.cookbooks"
BUILTIN_DISTRIBUTION = "blut"
_FUNCTIONS = (types.FunctionType, types.MethodType)
#: Built-ins that cannot be disabled: a run and the CLI need them.
ESSENTIAL = frozenset({"launcher-local", "cli-plugins", "cli-run", "containment-bare"})


class PluginRecord(NamedTuple):
    """One entry point of the ``blut.plugins`` (or ``blut.cookbooks``) group, loaded or not.

    A NamedTuple rather than an attrs class: records are built while the CLI starts, where
    every millisecond of import counts.
    """

    name: str
    distribution: str
    version: str
    builtin: bool
    module: str = ""
    error: str | None = None
    disabled: bool = False
    group: str = ENTRY_POINT_GROUP

    @property
    def kind(self) -> str:
        """``plugin`` or ``cookbook``."""
        return "cookbook" if self.group == COOKBOOK_GROUP else "plugin"

    @property
    def state(self) -> str:
        """``ok``, ``disabled`` or ``failed``."""
        if self.disabled:
            return "disabled"
        return "failed" if self.error else "ok"


class BlutPluginManager(pluggy.PluginManager):
    """A pluggy manager that keeps a :class:`PluginRecord` for every entry point it saw."""

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self.strict = strict
        self._seen: set[str] = set()

    def load_entry_points(self, eps: Iterable[EntryPoint], *, strict: bool,
                          blocked: Collection[str] = ()) -> None:
        for ep in eps:
            record = _record_for(ep)
            if ep.name in self._seen:
                self.records.append(record._replace(error="duplicate entry-point name"))
                continue
            self._seen.add(ep.name)
            if ep.name in blocked:
                self.records.append(record._replace(disabled=True))
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
                self._reject_unknown_hooks(ep.name)
            except Exception as exc:
                if self.get_plugin(ep.name) is not None:
                    self.unregister(name=ep.name)
                if strict or ep.name in ESSENTIAL:
                    raise PluginError(
                        f"{record.kind} {ep.name!r} ({record.distribution} {record.version}) "
                        f"failed to load: {type(exc).__name__}: {exc}",
                        hint="reinstall that distribution, or disable it with BLUT_DISABLE_PLUGINS",
                    ) from exc
                from blut_core.host.log import get_logger

                get_logger().warning("plugin_skipped", plugin=ep.name,
                                     distribution=record.distribution, error=str(exc))
                record = record._replace(error=f"{type(exc).__name__}: {exc}")
            self.records.append(record)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> HookimplOpts | None:
        """pluggy's answer, without its ``inspect.isroutine`` for each of the ~900 names the
        plugin modules hold (classes, modules, constants): only functions carry marks."""
        if name.startswith("__"):
            return None
        found = getattr(plugin, name, None)
        if type(found) in _FUNCTIONS:
            opts = getattr(found, f"{PROJECT}_impl", None)
            return typing.cast("HookimplOpts", opts) if isinstance(opts, dict) else None
        if found is None or isinstance(found, (type, types.ModuleType)) or not callable(found):
            return None
        return super().parse_hookimpl_opts(plugin, name)

    def mark_failed(self, name: str, error: str) -> None:
        """Record that plugin ``name`` failed after it loaded (a hook raised, a bad record).

        Under ``BLUT_STRICT_PLUGINS=1`` this raises instead: nothing broken is tolerated.
        """
        for i, r in enumerate(self.records):
            if r.name == name:
                if self.strict:
                    raise PluginError(f"{r.kind} {self.describe(name)} failed: {error}",
                                      hint="fix or uninstall it, or unset BLUT_STRICT_PLUGINS")
                if r.error is None:
                    self.records[i] = r._replace(error=error)
                elif error not in r.error:
                    self.records[i] = r._replace(error=f"{r.error}; {error}")
                return

    def record(self, name: str) -> PluginRecord | None:
        for r in self.records:
            if r.name == name:
                return r
        return None

    def describe(self, name: str) -> str:
        """``"launcher-slurm (blut-launcher-slurm 0.2.0)"``: used in every plugin message."""
        r = self.record(name)
        return f"{r.name} ({r.distribution} {r.version})" if r else name

    def _reject_unknown_hooks(self, name: str) -> None:
        """A misspelt hook name fails loudly instead of silently never being called."""
        plugin = self.get_plugin(name)
        for caller in self.get_hookcallers(plugin) or ():
            if not caller.has_spec():
                raise pluggy.PluginValidationError(plugin, f"unknown hook {caller.name!r} (typo?)")
        self.check_pending()


def make_plugin_manager(
    *,
    entry_points: Iterable[EntryPoint] | None = None,
    cookbook_entry_points: Iterable[EntryPoint] | None = None,
    blocked: Collection[str] = (),
    strict: bool = False,
    cache: Path | None = None,
) -> BlutPluginManager:
    """A fresh manager: plugins, then cookbooks (``None``: what is installed, scanned or read
    from the scan cached in ``cache``, see :mod:`blut_core.host.entrypoints`).

    Tests pass ``entry_points`` and ``cookbook_entry_points`` instead of patching importlib.
    """
    for name in blocked:
        if name in ESSENTIAL:
            raise PluginError(f"plugin {name!r} is essential and cannot be disabled",
                              hint="remove it from BLUT_DISABLE_PLUGINS")
    pm = BlutPluginManager(strict=strict)
    if entry_points is None or cookbook_entry_points is None:
        from blut_core.host.entrypoints import installed, select

        found = installed(cache)
        if entry_points is None:
            entry_points = select(found, ENTRY_POINT_GROUP)
        if cookbook_entry_points is None:
            cookbook_entry_points = select(found, COOKBOOK_GROUP)
    pm.load_entry_points(sorted(entry_points, key=_load_order), strict=strict, blocked=blocked)
    pm.load_entry_points(sorted(cookbook_entry_points, key=_load_order), strict=strict,
                         blocked=blocked)
    return pm


def _load_order(ep: EntryPoint) -> tuple[bool, str, str]:
    return (not _is_builtin(ep), ep.name, ep.value)


_DIST_CACHE: dict[int, tuple[md.Distribution, str, str]] = {}


def dist_of(ep: EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of an entry point, each METADATA read once.

    ``Distribution.name`` and ``.version`` parse METADATA on every access; the entry points
    of one distribution share its object, so this is keyed by that object. A cached entry
    point carries both.
    """
    if not hasattr(ep, "dist"):
        return ep.distribution, ep.version
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    hit = _DIST_CACHE.get(id(dist))
    if hit is None or hit[0] is not dist:
        meta = dist.metadata
        hit = (dist, meta["Name"] or "?", meta["Version"] or "?")
        _DIST_CACHE[id(dist)] = hit
    return hit[1], hit[2]


def _is_builtin(ep: EntryPoint) -> bool:
    return dist_of(ep)[0] == BUILTIN_DISTRIBUTION


def _record_for(ep: EntryPoint) -> PluginRecord:
    name, version = dist_of(ep)
    return PluginRecord(name=ep.name, distribution=name, version=version,
                        builtin=name == BUILTIN_DISTRIBUTION, module=ep.value,
                        group=getattr(ep, "group", None) or ENTRY_POINT_GROUP)
