"""Which lineage sinks a run feeds: ``BLUT_LINEAGE_SINKS``, resolved against the registry.

``BLUT_LINEAGE_SINKS=duckdb,jsonl`` (default ``duckdb``; ``none`` turns lineage off). A name
that is not installed, or whose plugin or sink cannot load, is a one-line
:class:`ConfigError` naming it (exit 2): a run does not start with it
(:mod:`blut_core.lineage.ingest`), and ``blut lineage reindex --sink`` refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core.errors import ConfigError
from blut_core.lineage.model import LineageSink

if TYPE_CHECKING:
    from blut_core.host.manager import PluginRecord
    from blut_core.host.registry import Registry

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


def open_sink(registry: Registry, name: str, home: Path,
              records: Iterable[PluginRecord] = ()) -> LineageSink:
    """Construct sink ``name`` for ``home``, or raise a one-line :class:`ConfigError`.

    ``records`` (the plugin manager's) let the error name a plugin that failed to load.
    """
    table = registry.lineage_sinks
    if name not in table:
        failed = [r for r in records if r.error]
        culprit = next((r for r in failed if r.name.split("-", 1)[-1] == name), None)
        if culprit is not None:
            raise ConfigError(f"lineage sink {name!r} (named in {ENV}) cannot load: plugin "
                              f"{culprit.name} ({culprit.distribution} {culprit.version}) "
                              f"failed: {culprit.error}",
                              hint=f"reinstall {culprit.distribution}, or remove {name!r} "
                                   f"from {ENV}; installed sinks: {', '.join(table) or 'none'}")
        hint = f"installed sinks: {', '.join(table) or 'none'}; fix {ENV} or install the " \
               f"plugin that provides it"
        if failed:
            hint += ("; plugin(s) that failed to load: "
                     + ", ".join(f"{r.name} ({r.error})" for r in failed))
        raise ConfigError(f"lineage sink {name!r} (named in {ENV}) is not installed", hint=hint)
    provided = table[name]
    try:
        sink = provided.item.factory(home)
    except Exception as exc:
        raise ConfigError(f"lineage sink {name!r} from plugin {provided.plugin!r} cannot load: "
                          f"{type(exc).__name__}: {exc}",
                          hint=f"fix or reinstall that plugin, or remove {name!r} from {ENV}"
                          ) from exc
    if not isinstance(sink, LineageSink):
        raise ConfigError(f"lineage sink {name!r} from plugin {provided.plugin!r} does not "
                          f"implement ingest() and rebuild()",
                          hint=f"remove {name!r} from {ENV}, and report this to the "
                               f"plugin's authors")
    return sink
