"""Feeding a finished run to the lineage sinks: part of every run's life, owned by the core.

:func:`check_sinks` runs when a run starts, before its directory exists: every sink named in
``BLUT_LINEAGE_SINKS`` must be installed and constructible, and ``BLUT_LINEAGE_INGEST`` a
mode, else the run does not start (:class:`ConfigError`, exit 2). :func:`ingest` runs when
the run has finished (ok, failed, cancelled, refused, and after ``blut resume``) with the
sinks checked at its start. A sink that can catch up (``deferred = True``: the DuckDB sink)
gets, in the default ``deferred`` mode, only a marker that the run is pending, and ingests it
when it is next read (:mod:`blut_core.lineage.pending`), so the driver never loads its
engine; the others (and every sink in ``at-end`` mode) get the run directory, read once. A
sink that fails is one warning with the hint to reindex, and never changes the run's outcome
or exit code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core.host.log import get_logger
from blut_core.lineage.pending import REINDEX_HINT, ingest_mode, mark_pending
from blut_core.lineage.sinks import configured, open_sink

if TYPE_CHECKING:
    from blut_core.host.app import App
    from blut_core.lineage.model import LineageSink

Checked = list[tuple[str, "LineageSink"]]

_REINDEX_HINT = REINDEX_HINT


def check_sinks(app: App) -> Checked:
    """The configured sinks, constructed; a bad configuration raises :class:`ConfigError`.

    A sink that will be fed at the run's end and has a ``prepare()`` method is asked to get
    ready now, while the run runs, so the run's end only writes.
    """
    environ = {**os.environ, **app.settings.environ}
    mode = ingest_mode(environ)
    sinks = [(name, open_sink(app.registry, name, app.settings.home, records=app.pm.records))
             for name in configured(environ)]
    for _, sink in sinks:
        prepare = getattr(sink, "prepare", None)
        if callable(prepare) and not _deferred(sink, mode):
            prepare()
    return sinks


def _deferred(sink: LineageSink, mode: str) -> bool:
    return mode == "deferred" and getattr(sink, "deferred", False) is True


def ingest(app: App, run_dir: Path, sinks: Checked) -> int:
    """Feed ``run_dir`` to ``sinks`` (from :func:`check_sinks`); returns how many succeeded
    (a sink that will catch up has succeeded once the run is durably marked pending for it).

    Never raises for a sink or a damaged directory: those are logged as warnings.
    """
    if not sinks:
        return 0
    log = get_logger()
    mode = ingest_mode({**os.environ, **app.settings.environ})
    later = [(n, s) for n, s in sinks if _deferred(s, mode)]
    now = [(n, s) for n, s in sinks if not _deferred(s, mode)]
    done = 0
    if later:
        problem = _damage(Path(run_dir))
        if problem is not None:  # as an ingest would: one warning now, nothing to catch up
            log.warning("lineage_ingest_failed", run=Path(run_dir).name, error=problem,
                        hint=_REINDEX_HINT)
            later = []
        for name, _ in later:
            try:
                mark_pending(app.settings.home, name, Path(run_dir), app.settings.cache_dir)
            except OSError as exc:
                log.warning("lineage_sink_failed", sink=name, run=Path(run_dir).name,
                            error=f"{type(exc).__name__}: {exc}", hint=_REINDEX_HINT)
                continue
            done += 1
    if not now:
        return done
    from blut_core.lineage.extract import extract_run

    try:
        lineage = extract_run(run_dir, cache_root=app.settings.cache_dir)
    except Exception as exc:
        log.warning("lineage_ingest_failed", run=Path(run_dir).name,
                    error=f"{type(exc).__name__}: {exc}", hint=_REINDEX_HINT)
        return done
    for name, sink in now:
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


def _damage(run_dir: Path) -> str | None:
    """Why ``run_dir`` cannot be indexed at all, by what is cheap to check at the run's end
    (its plan): ``None`` when it looks whole. The rest is found when the run is caught up."""
    from blut_core.store.runs import read_document

    _, problem = read_document(run_dir / "plan.json")
    return None if problem is None else f"DamagedRun: {run_dir.name}: {problem}"
