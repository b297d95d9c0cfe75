"""The pluggy markers of the ``blut`` project (``blut_core.hookimpl`` for plugin authors)."""

from __future__ import annotations

import pluggy

PROJECT = "blut"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
