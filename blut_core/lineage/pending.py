"""Runs a lineage sink has yet to index: deferred ingest, one small marker file per run.

With ``[lineage] ingest = "deferred"`` (``BLUT_LINEAGE_INGEST``, the default), a run's end
does not open a sink that says it can catch up (``deferred = True`` on the sink, as the DuckDB
sink does): it writes ``$BLUT_HOME/lineage-pending/<sink>/<run id>.json`` (the run
directory and the cache it read, fsync'ed with its directory), so the driver never imports
the database engine. Whatever reads that sink first calls :func:`catch_up` under the sink's
own write lock: every pending run is read from its directory, handed to the sink, and its
marker removed; a second reader waiting on the lock then finds none left, so no run is
ingested twice. A run directory that turns out damaged is one warning (the hint: ``blut
lineage reindex``) and its marker is dropped, as an ingest at the run's end would have done;
a marker whose run directory is gone (the run was pruned) is dropped quietly.
``"at-end"`` ingests into every sink when the run ends, as sinks without ``deferred`` always
are (the JSONL sink: appending a line is cheap).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core.errors import ConfigError
from blut_core.host.log import get_logger

if TYPE_CHECKING:
    from blut_core.lineage.model import RunLineage

ENV = "BLUT_LINEAGE_INGEST"
MODES = ("deferred", "at-end")
DEFAULT = "deferred"
DIRECTORY = "lineage-pending"
REINDEX_HINT = ("the run is unaffected; `blut lineage reindex` rebuilds the index from the "
                "run directories")


def ingest_mode(environ: Mapping[str, str]) -> str:
    """``deferred`` or ``at-end`` from ``BLUT_LINEAGE_INGEST``; anything else is a ConfigError."""
    text = (environ.get(ENV) or "").strip().lower()
    if not text:
        return DEFAULT
    if text not in MODES:
        raise ConfigError(f"{ENV}={environ.get(ENV)!r} is not an ingest mode",
                          hint="'deferred' (sinks that can catch up index a run when next read) "
                               "or 'at-end' (every sink when the run ends)")
    return text


def pending_folder(home: Path, sink: str) -> Path:
    """Where the markers of ``sink`` under ``home`` are."""
    return Path(home) / DIRECTORY / sink


def mark_pending(home: Path, sink: str, run_dir: Path, cache_dir: Path) -> Path:
    """Record, durably, that ``run_dir`` waits to be ingested into ``sink``; returns the marker."""
    where = pending_folder(home, sink)
    where.mkdir(parents=True, exist_ok=True)
    run_dir = Path(run_dir).absolute()
    path = where / f"{run_dir.name}.json"
    tmp = where / f".{run_dir.name}.{os.getpid()}.tmp"
    data = json.dumps({"run_dir": str(run_dir), "cache_dir": str(Path(cache_dir).absolute())})
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(where)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pending_markers(home: Path, sink: str) -> list[Path]:
    """The pending markers of ``sink``, oldest run first (run ids start with their time)."""
    try:
        names = os.listdir(pending_folder(home, sink))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [pending_folder(home, sink) / n for n in sorted(names) if n.endswith(".json") and n[0] != "."]


def catch_up(home: Path, sink: str, ingest: Callable[[RunLineage], None]) -> int:
    """Ingest every run pending for ``sink`` through ``ingest``, then remove its marker.

    The caller holds the sink's write lock (so two catch-ups never ingest one run twice).
    Returns how many runs were ingested. An exception from ``ingest`` (the sink itself is
    failing) propagates with the run's marker kept, to be caught up the next time.
    """
    from blut_core.lineage.extract import extract_run

    log = get_logger()
    done = 0
    for marker in pending_markers(home, sink):
        try:
            spec = json.loads(marker.read_text(encoding="utf-8"))
            run_dir, cache_dir = Path(spec["run_dir"]), Path(spec["cache_dir"])
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("lineage_marker_unreadable", marker=str(marker), error=str(exc),
                        hint=REINDEX_HINT)
            marker.unlink(missing_ok=True)
            continue
        if not run_dir.is_dir():  # removed since it ended (e.g. pruned): nothing to index
            marker.unlink(missing_ok=True)
            continue
        try:
            lineage = extract_run(run_dir, cache_root=cache_dir)
        except Exception as exc:
            log.warning("lineage_ingest_failed", run=run_dir.name,
                        error=f"{type(exc).__name__}: {exc}", hint=REINDEX_HINT)
            marker.unlink(missing_ok=True)
            continue
        ingest(lineage)
        marker.unlink(missing_ok=True)
        done += 1
    return done


def settle_pending(home: Path, sink: str, before: float) -> None:
    """Drop the markers of ``sink`` written before ``before`` (a rebuild indexed their runs)."""
    for marker in pending_markers(home, sink):
        with contextlib.suppress(OSError):
            if marker.stat().st_mtime < before:
                marker.unlink()
