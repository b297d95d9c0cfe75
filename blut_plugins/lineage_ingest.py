"""Ingest every finished run into the configured lineage sinks.

Entry point ``lineage-ingest``. At run start the sink configuration (``BLUT_LINEAGE_SINKS``,
default ``duckdb``) is checked, and a sink that is not installed or cannot load is reported
as an error on stderr right away, so a long run does not end with a surprise. At run end
(ok, failed or cancelled) the run directory is read once and handed to every sink; a sink
that fails is logged with its error and the hint to reindex. Neither ever changes the run's
outcome or exit code: the run directory stays the source of truth.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from blut_core import RunInfo, RunSummary, hookimpl
from blut_core.errors import BlutError
from blut_core.lineage import sinks
from blut_core.lineage.model import LineageSink
from blut_core.log import get_logger
from blut_core.registry import Registry


@functools.cache
def _registry(blocked: tuple[str, ...]) -> Registry:
    # Notification hooks do not receive the App, so the sinks are looked up in a registry
    # of the installed plugins (honouring BLUT_DISABLE_PLUGINS), built once per process.
    from blut_core.manager import make_plugin_manager

    return Registry(make_plugin_manager(blocked=blocked))


def _blocked() -> tuple[str, ...]:
    from blut_core.settings import Settings

    return Settings.from_environ().disabled_plugins


def home_of(run: RunInfo) -> Path:
    """``$BLUT_HOME`` of a run: its directory is ``<home>/runs/<run-id>``."""
    return Path(run.run_dir).parent.parent


def configured_sinks(home: Path) -> list[tuple[str, LineageSink]]:
    """The sinks to feed; every one that cannot be used is logged as an error (never silent)."""
    log = get_logger()
    try:
        names = sinks.configured(os.environ)
    except BlutError as err:
        log.error("lineage_config_invalid", error=err.message, hint=err.hint)
        return []
    found: list[tuple[str, LineageSink]] = []
    for name in names:
        try:
            found.append((name, sinks.open_sink(_registry(_blocked()), name, home)))
        except BlutError as err:
            log.error("lineage_sink_unavailable", sink=name, error=err.message, hint=err.hint)
    return found


@hookimpl
def blut_run_started(run: RunInfo) -> None:
    configured_sinks(home_of(run))


@hookimpl
def blut_run_finished(run: RunInfo, summary: RunSummary) -> None:
    ingest_run(Path(run.run_dir), home_of(run))


def ingest_run(run_dir: Path, home: Path) -> int:
    """Feed one run directory to every configured sink; returns how many succeeded."""
    from blut_core.lineage.extract import extract_run

    log = get_logger()
    targets = configured_sinks(home)
    if not targets:
        return 0
    try:
        lineage = extract_run(run_dir, cache_root=home / "cache")
    except Exception as exc:
        log.warning("lineage_ingest_failed", run=run_dir.name, error=f"{type(exc).__name__}: {exc}",
                    hint="the run is unaffected; `blut lineage reindex` retries from its directory")
        return 0
    done = 0
    for name, sink in targets:
        started = time.perf_counter()
        try:
            sink.ingest(lineage)
        except Exception as exc:
            log.warning("lineage_sink_failed", sink=name, run=lineage.run_id,
                        error=f"{type(exc).__name__}: {exc}",
                        hint="the run is unaffected; `blut lineage reindex` rebuilds the index "
                             "from the run directories")
            continue
        done += 1
        log.debug("lineage_ingested", sink=name, run=lineage.run_id,
                  seconds=round(time.perf_counter() - started, 4))
    return done
