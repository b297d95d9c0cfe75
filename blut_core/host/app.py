"""The App: manager + registry + typed hooks + cookbooks. One per process, one per test."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from blut_core.host.hooks import Hooks
from blut_core.host.manager import BlutPluginManager, make_plugin_manager
from blut_core.host.registry import Registry
from blut_core.host.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from blut_core.host.cookbooks import CookbookIndex


class App:
    """Everything a command needs, built from the environment or given explicitly in tests."""

    def __init__(self, pm: BlutPluginManager, settings: Settings) -> None:
        self.pm = pm
        self.settings = settings
        self.registry = Registry(pm)
        self.hooks = Hooks(pm)
        self.hooks.configure(settings)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> App:
        settings = Settings.from_environ(environ)
        pm = make_plugin_manager(blocked=settings.disabled_plugins, strict=settings.strict_plugins,
                                 cache=settings.home / "entry-points")
        return cls(pm, settings)

    @functools.cached_property
    def cookbooks(self) -> CookbookIndex:
        """The loaded cookbooks and their recipes, asked for on first use."""
        from blut_core.host.cookbooks import CookbookIndex

        return CookbookIndex.build(self.pm)
