"""Feeding a finished run to the lineage sinks: part of every run's life, owned by the core.

:func:`check_sinks` runs when a run starts, before its directory exists: every sink named in
``BLUT_LINEAGE_SINKS`` must be installed and constructible, else the run does not start
(:class:`ConfigError`, exit 2). :func:`ingest` runs when the run has finished (ok, failed,
cancelled, refused, and after ``blut resume``) with the sinks checked at its start: the run
directory is read once and handed to each; a sink that fails is one warning with the hint
to reindex, and never changes the run's outcome or exit code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core.host.log import get_logger
from blut_core.lineage.sinks import configured, open_sink

if TYPE_CHECKING:
    from blut_core.host.app import App
    from blut_core.lineage.model import LineageSink

Checked = list[tuple[str, "LineageSink"]]

_REINDEX_HINT = ("the run is unaffected; `blut lineage reindex` rebuilds the index from the "
                 "run directories")


def check_sinks(app: App) -> Checked:
    """The configured sinks, constructed; a bad configuration raises :class:`ConfigError`.

    A sink with a ``prepare()`` method is asked to get ready now, while the run runs (the
    DuckDB sink starts its engine in the background), so the run's end only writes.
    """
    environ = {**os.environ, **app.settings.environ}
    sinks = [(name, open_sink(app.registry, name, app.settings.home, records=app.pm.records))
             for name in configured(environ)]
    for _, sink in sinks:
        prepare = getattr(sink, "prepare", None)
        if callable(prepare):
            prepare()
    return sinks


def ingest(app: App, run_dir: Path, sinks: Checked) -> int:
    """Feed ``run_dir`` to ``sinks`` (from :func:`check_sinks`); returns how many succeeded.

    Never raises for a sink or a damaged directory: those are logged as warnings.
    """
    if not sinks:
        return 0
    from blut_core.lineage.extract import extract_run

    log = get_logger()
    try:
        lineage = extract_run(run_dir, cache_root=app.settings.cache_dir)
    except Exception as exc:
        log.warning("lineage_ingest_failed", run=Path(run_dir).name,
                    error=f"{type(exc).__name__}: {exc}", hint=_REINDEX_HINT)
        return 0
    done = 0
    for name, sink in sinks:
        started = time.perf_counter()
        try:
            sink.ingest(lineage)
        except Exception as exc:
            log.warning("lineage_sink_failed", sink=name, run=lineage.run_id,
                        error=f"{type(exc).__name__}: {exc}", hint=_REINDEX_HINT)
            continue
        done += 1
        log.debug("lineage_ingested", sink=name, run=lineage.run_id,
                  seconds=round(time.perf_counter() - started, 4))
    return done
