"""The App: manager + registry + typed hooks + cookbooks. One per process, one per test."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from blut_core.hooks import Hooks
from blut_core.manager import BlutPluginManager, make_plugin_manager
from blut_core.registry import Registry
from blut_core.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from importlib import metadata as md

    from blut_core.cookbooks import CookbookIndex


class App:
    """Everything a command needs, built from the environment or given explicitly in tests."""

    def __init__(self, pm: BlutPluginManager, settings: Settings,
                 cookbook_entry_points: Iterable[md.EntryPoint] | None = None) -> None:
        self.pm = pm
        self.settings = settings
        self.registry = Registry(pm)
        self.hooks = Hooks(pm)
        self._cookbook_eps = cookbook_entry_points
        self.hooks.configure(settings)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> App:
        settings = Settings.from_environ(environ)
        pm = make_plugin_manager(blocked=settings.disabled_plugins, strict=settings.strict_plugins)
        return cls(pm, settings)

    @functools.cached_property
    def cookbooks(self) -> CookbookIndex:
        """Cookbooks and their recipes, discovered on first use."""
        from blut_core.cookbooks import CookbookIndex

        return CookbookIndex.discover(self._cookbook_eps, strict=self.settings.strict_plugins)
