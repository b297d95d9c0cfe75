"""Which lineage sinks a run feeds: ``BLUT_LINEAGE_SINKS``, resolved against the registry.

``BLUT_LINEAGE_SINKS=duckdb,jsonl`` (default ``duckdb``; ``none`` turns lineage off). A name
that is not installed, or whose sink cannot be constructed, is a :class:`PluginError` naming
it: commands raise it (exit 2); at the end of a run it is logged as an error on stderr and
the other sinks still ingest, because a run's result never depends on its index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core.errors import ConfigError, PluginError
from blut_core.lineage.model import LineageSink

if TYPE_CHECKING:
    from blut_core.registry import Registry

ENV = "BLUT_LINEAGE_SINKS"
DEFAULT = ("duckdb",)
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def configured(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Sink names from ``BLUT_LINEAGE_SINKS`` (default ``duckdb``; ``none``: no sinks)."""
    text = environ.get(ENV)
    if text is None or not text.strip():
        return DEFAULT
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n == "none" or not _NAME.match(n)]
    if bad:
        raise ConfigError(f"{ENV}={text!r}: {', '.join(map(repr, bad))} is not a sink name",
                          hint="a comma-separated list such as 'duckdb,jsonl', or 'none'")
    return tuple(dict.fromkeys(names))


def open_sink(registry: Registry, name: str, home: Path) -> LineageSink:
    """Construct sink ``name`` for ``home``, or raise a one-line :class:`PluginError`."""
    table = registry.lineage_sinks
    if name not in table:
        raise PluginError(f"lineage sink {name!r} (named in {ENV}) is not installed",
                          hint=f"installed sinks: {', '.join(table) or 'none'}; "
                               f"fix {ENV} or install the plugin that provides it")
    provided = table[name]
    try:
        sink = provided.item.factory(home)
    except Exception as exc:
        raise PluginError(f"lineage sink {name!r} from plugin {provided.plugin!r} cannot load: "
                          f"{type(exc).__name__}: {exc}",
                          hint=f"fix or uninstall that plugin, or remove {name!r} from {ENV}"
                          ) from exc
    if not isinstance(sink, LineageSink):
        raise PluginError(f"lineage sink {name!r} from plugin {provided.plugin!r} does not "
                          f"implement ingest() and rebuild()",
                          hint="please report this to the plugin's authors")
    return sink
