"""The plugin host: hookspecs, the plugin manager, the registry, the App, settings, logging.

Owns how plugins and cookbooks are found, loaded, recorded (ok, disabled, failed) and called
(through the typed :class:`~blut_core.host.hooks.Hooks` facade), and the process settings
(``BLUT_*`` variables over ``blut.toml`` files).
Imports :mod:`blut_core.model` and :mod:`blut_core.errors` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.host.config import KEYS as KEYS
    from blut_core.host.config import Config as Config
    from blut_core.host.config import ConfigValue as ConfigValue
    from blut_core.host.log import get_logger as get_logger
    from blut_core.host.manager import COOKBOOK_GROUP as COOKBOOK_GROUP
    from blut_core.host.manager import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from blut_core.host.manager import BlutPluginManager as BlutPluginManager
    from blut_core.host.manager import make_plugin_manager as make_plugin_manager
    from blut_core.host.registry import Provided as Provided

_WHERE = {
    "ENTRY_POINT_GROUP": "host.manager", "BlutPluginManager": "host.manager",
    "make_plugin_manager": "host.manager",
    "COOKBOOK_GROUP": "host.manager",
    "get_logger": "host.log",
    "Config": "host.config", "ConfigValue": "host.config", "KEYS": "host.config",
    "Provided": "host.registry",
}

__getattr__, __all__ = exports(__name__, _WHERE)
