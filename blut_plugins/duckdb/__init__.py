"""The ``duckdb`` lineage sink: one embedded DuckDB file, ``$BLUT_HOME/lineage.duckdb``.

Entry point ``lineage-duckdb``. The default sink and the one ``blut lineage``, ``blut runs
list|top``, ``blut artifacts show`` and ``blut cache stats`` query.

Concurrency. DuckDB lets one process open a file for writing and any number open it
read-only, never both at once. So every blut writer first takes an exclusive ``flock`` on
``lineage.lock`` (a second ``blut run`` finishing at the same time waits its turn instead of
failing), then opens the file, writes one transaction, and closes it again: the file is held
for milliseconds. Readers open it read-only, run their queries, fetch everything and close;
either side retries a lock conflict with a short backoff for up to ``timeout`` seconds.

Schema. ``blut_meta.schema_version`` says which of :func:`migrations` were applied; a writer
or reader that finds an older version migrates it forward (in one transaction); a newer
version is an error (this blut is older than the one that wrote the file).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut_core import BlutError, ConfigError, hookimpl
from blut_plugins.duckdb.spool import SORT_KEYS as SORT_KEYS
from blut_plugins.duckdb.spool import TYPES, Spool

if TYPE_CHECKING:
    from blut_core import LineageSinkSpec
    from blut_core.lineage import RunLineage

SINK = "duckdb"
DB_NAME = "lineage.duckdb"
LOCK_NAME = "lineage.lock"
SCHEMA_VERSION = 3
#: What each schema version added; version 1 is everything not listed here.
_ADDED: dict[int, dict[str, tuple[str, ...] | None]] = {
    2: {"runs": ("containment",), "calibration": None},   # None: the whole table
    3: {"runs": ("schedule",)},
}
WRITE_TIMEOUT = 300.0
#: A writer leaves its transaction in the write-ahead log (detaching in ~1 ms instead of
#: checkpointing, ~20 ms) unless the log it found was already this large; then it
#: checkpoints at its end. Readers replay the log when they open the file (~3 ms per
#: 100 KiB), so it is kept small: a 100-stage run adds ~90 KiB.
WAL_CHECKPOINT_BYTES = 256 << 10
READ_TIMEOUT = 30.0


def _columns(table: str, version: int) -> list[tuple[str, str]]:
    from blut_core.lineage import COLUMNS

    later = {c for v, added in _ADDED.items() if v > version
             for c in (added.get(table) or ()) if added.get(table) is not None}
    return [(c, t) for c, t in COLUMNS[table] if c not in later]


def _create(table: str, version: int) -> str:
    cols = ", ".join(f"{c} {TYPES[t]}" for c, t in _columns(table, version))
    return f"CREATE TABLE {table} ({cols})"


def _migration(version: int) -> list[str]:
    """The statements that take a database from ``version - 1`` to ``version``."""
    from blut_core.lineage import COLUMNS, TABLES

    if version == 1:
        later_tables = {t for added in _ADDED.values() for t, cols in added.items() if cols is None}
        return (["CREATE TABLE blut_meta (key VARCHAR, value VARCHAR)",
                 "INSERT INTO blut_meta VALUES ('schema_version', '0')"]
                + [_create(t, 1) for t in TABLES if t not in later_tables])
    statements = []
    for table, cols in _ADDED[version].items():
        if cols is None:
            statements.append(_create(table, version))
        else:
            statements += [f"ALTER TABLE {table} ADD COLUMN {c} {TYPES[dict(COLUMNS[table])[c]]}"
                           for c in cols]
    return statements


@functools.cache
def migrations() -> dict[int, list[str]]:
    """The statements of every schema version (built on first use, not at import)."""
    return {v: _migration(v) for v in range(1, SCHEMA_VERSION + 1)}


class LineageBusy(BlutError):
    """The lineage database stayed locked by another process for too long."""


class LineageMissing(ConfigError):
    """There is no lineage database yet."""


def _is_lock_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def engine() -> Any:
    """The DuckDB engine: its native extension module alone when it can be imported so.

    ``import duckdb`` also loads the package's Python relation and expression layers
    (~0.1 s here) that plain SQL never uses; the native module (``_duckdb``, ~0.02 s) has
    ``connect``, the connection and the exceptions. Falls back to the ``duckdb`` package.
    """
    import importlib

    try:
        native: Any = importlib.import_module("_duckdb")
    except ImportError:
        native = None
    if native is not None and all(hasattr(native, n) for n in _ENGINE_API):
        return native
    import duckdb

    return duckdb


_ENGINE_API = ("connect", "IOException", "CatalogException", "DuckDBPyConnection")
#: Readers and single-run writers gain nothing from DuckDB's thread pool but its start-up.
_SMALL = {"threads": "1"}
#: The writers' in-memory engine: nothing is fetched from the network or loaded on demand.
_WRITER_ENGINE = {**_SMALL, "autoload_known_extensions": "false",
                  "autoinstall_known_extensions": "false"}
#: The name the lineage file is attached under in the writers' engine.
_ATTACHED = "blut_lineage"


class _Engine:
    """One in-memory DuckDB instance per process, into which writers attach the file.

    Starting a DuckDB instance (~20 ms: its catalog of built-in functions) is most of what
    opening a file costs; attaching the file to an instance that already runs costs ~4 ms
    and detaching ~1 ms. :meth:`warm` starts the instance in a background thread (a run
    does so when it starts, so its end only attaches, writes and detaches).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()          # one writer block at a time in this process
        self._con: Any = None
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None

    def _forked(self) -> None:
        """A forked child starts its own instance (never uses its parent's)."""
        if self._pid != os.getpid():
            self._lock, self._con, self._thread = threading.Lock(), None, None
            self._pid = os.getpid()

    def warm(self) -> None:
        self._forked()
        if self._con is not None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._start_quietly, name="blut-lineage-engine",
                                        daemon=True)
        self._thread.start()
        atexit.register(self._thread.join)     # never exit in the middle of DuckDB's start

    def _start_quietly(self) -> None:
        with contextlib.suppress(Exception):   # raised again, and reported, by the writer
            self._start()

    def _start(self) -> Any:
        with self._lock:
            if self._con is None:
                con = engine().connect(":memory:", config=_WRITER_ENGINE)
                con.execute("PRAGMA disable_checkpoint_on_shutdown")  # writers checkpoint
                self._con = con
            return self._con

    @contextlib.contextmanager
    def held(self) -> Iterator[Any]:
        """The instance's connection, for this thread alone inside the block."""
        self._forked()
        if self._thread is not None:
            self._thread.join()
        con = self._start()
        with self._lock:
            yield con


_ENGINE = _Engine()


def schema_version(con: Any) -> int:
    """The schema version recorded in an open database (0: not a blut lineage database)."""
    try:
        row = con.execute("SELECT value FROM blut_meta WHERE key = 'schema_version'").fetchone()
    except engine().CatalogException:
        return 0
    return int(row[0]) if row else 0


class DuckDBLineage:
    """The DuckDB file under a blut home: writer and reader connections, ingest, rebuild."""


    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / DB_NAME
        self.lock_path = self.home / LOCK_NAME

    @property
    def deferred(self) -> bool:
        """A run's end only marks the run pending, and :meth:`reader` ingests it (unless
        ``BLUT_LINEAGE_INGEST=at-end``), while the index is a file that can be opened then
        (or is not made yet); else (a directory in its place) the run's end tries, and
        reports the failure then."""
        try:
            return stat.S_ISREG(os.stat(self.path).st_mode)
        except FileNotFoundError:
            return True
        except OSError:
            return False

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, timeout: float = WRITE_TIMEOUT) -> Iterator[None]:
        """Exclusive among blut writers on this machine; waits up to ``timeout`` seconds."""
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _wait(lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB), BlockingIOError,
                  timeout, f"another blut process is writing {self.path}")
            yield
        finally:
            os.close(fd)

    def _connect(self, path: Path, *, read_only: bool, timeout: float,
                 config: dict[str, str] | None = None) -> Any:
        duckdb = engine()

        def attempt() -> Any:
            try:
                return duckdb.connect(str(path), read_only=read_only, config=config or {})
            except duckdb.IOException as exc:
                if _is_lock_conflict(exc):
                    raise _Retry from exc
                raise ConfigError(f"cannot open lineage database {path}: {exc}",
                                  hint="delete it and run `blut lineage reindex`") from None

        return _wait(attempt, _Retry, timeout, f"{path} is locked by another process")

    def prepare(self) -> None:
        """Start the writers' engine in the background (a run that ingests at its end calls
        this when it starts)."""
        _ENGINE.warm()

    def _attach(self, con: Any, timeout: float) -> None:
        duckdb = engine()
        target = str(self.path).replace("'", "''")

        def attempt() -> None:
            try:
                con.execute(f"ATTACH '{target}' AS {_ATTACHED}")
            except duckdb.IOException as exc:
                if _is_lock_conflict(exc):
                    raise _Retry from exc
                raise ConfigError(f"cannot open lineage database {self.path}: {exc}",
                                  hint="delete it and run `blut lineage reindex`") from None

        _wait(attempt, _Retry, timeout, f"{self.path} is locked by another process")

    @contextlib.contextmanager
    def writer(self, timeout: float = WRITE_TIMEOUT) -> Iterator[Any]:
        """A read-write connection at the current schema, held only inside the block.

        The file is attached to this process's in-memory engine (:class:`_Engine`) and
        detached at the end, which releases it; its transactions stay in the write-ahead
        log until that reaches :data:`WAL_CHECKPOINT_BYTES`.
        """
        with self.write_lock(timeout), _ENGINE.held() as con:
            checkpoint = _wal_size(self.path) >= WAL_CHECKPOINT_BYTES
            fresh = not self.path.exists()  # a file this writer makes is gone if it fails
            try:
                self._attach(con, timeout)
                try:
                    con.execute(f"USE {_ATTACHED}")
                    migrate(con, self.path)
                    yield con
                    if checkpoint:
                        con.execute(f"CHECKPOINT {_ATTACHED}")
                finally:
                    with contextlib.suppress(Exception):
                        con.execute("ROLLBACK")       # a transaction left open by the block
                    con.execute("USE memory")
                    con.execute(f"DETACH {_ATTACHED}")
            except BaseException:  # e.g. a full disk: no half-made database stays behind
                for leftover in (self.path, Path(f"{self.path}.wal")) if fresh else ():
                    leftover.unlink(missing_ok=True)
                raise

    @contextlib.contextmanager
    def reader(self, timeout: float = READ_TIMEOUT) -> Iterator[Any]:
        """A read-only connection; migrates an older file first (briefly as a writer), and
        first ingests the runs that ended pending for this sink (:meth:`catch_up`)."""
        try:
            self.catch_up(timeout)
        except Exception as exc:  # busy too long, a full disk: read what is indexed so far
            from blut_core.host import get_logger

            error = exc.message if isinstance(exc, BlutError) else f"{type(exc).__name__}: {exc}"
            get_logger().warning("lineage_catch_up_failed", db=str(self.path), error=error,
                                 hint="the pending runs stay pending; the next reader tries again")
        if not self.path.exists():
            raise LineageMissing(f"there is no lineage database at {self.path} yet",
                                 hint="it is written at the end of every run; "
                                      "`blut lineage reindex` builds it from the run directories")
        con = self._connect(self.path, read_only=True, timeout=timeout, config=_SMALL)
        version = schema_version(con)
        if version != SCHEMA_VERSION:
            con.close()
            if version > SCHEMA_VERSION:
                raise _too_new(self.path, version)
            with self.writer(timeout):
                pass
            con = self._connect(self.path, read_only=True, timeout=timeout, config=_SMALL)
        try:
            yield con
        finally:
            con.close()

    # -- the sink ----------------------------------------------------------------------

    def ingest(self, lineage: RunLineage, *, timeout: float = WRITE_TIMEOUT) -> None:
        """Replace this run's rows (one transaction; idempotent)."""
        with self.writer(timeout) as con:
            _replace(con, lineage)

    def catch_up(self, timeout: float = WRITE_TIMEOUT) -> int:
        """Ingest every run whose end left it pending for this sink (``deferred``; see
        :mod:`blut_core.lineage.pending`), one transaction each, under the write lock;
        returns how many. Without pending runs this is one directory listing."""
        from blut_core.lineage import catch_up, pending_markers

        if not pending_markers(self.home, SINK):
            return 0
        with self.writer(timeout) as con:
            return catch_up(self.home, SINK, lambda lineage: _replace(con, lineage))

    def rebuild(self, runs: Iterable[RunLineage], *, timeout: float = WRITE_TIMEOUT
                ) -> dict[str, int]:
        """Write a new database from ``runs`` and swap it in with one rename; the runs that
        were pending before it began are dropped with the old index."""
        import tempfile

        from blut_core.lineage import settle_pending

        begun = time.time()
        self.home.mkdir(parents=True, exist_ok=True)
        # The lock is held throughout, so a run finishing meanwhile ingests after the swap.
        with self.write_lock(timeout), \
                tempfile.TemporaryDirectory(prefix=".lineage-rebuild-", dir=self.home) as tmp:
            files = Spool(Path(tmp))
            for lineage in runs:
                files.add(lineage)
            files.close()
            fresh = Path(tmp) / DB_NAME
            con = self._connect(fresh, read_only=False, timeout=timeout)
            try:
                migrate(con, fresh)
                files.load(con, sort=True)
            finally:
                con.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}.wal")  # a crashed writer's log must not outlive its file
            os.replace(fresh, self.path)
            settle_pending(self.home, SINK, begun)
            return dict(files.counts)


def _replace(con: Any, lineage: RunLineage) -> None:
    """Replace ``lineage``'s run's rows in the attached database, in one transaction.

    Rows go in through DuckDB's appender, one flush per table; a run seen for the first
    time (the usual case) needs no deletes.
    """
    from blut_core.lineage import COLUMNS, TABLES

    tables = [(t, [c for c, _ in COLUMNS[t]], lineage.rows(t)) for t in TABLES]
    values = [(t, names, [tuple(r.get(c) for c in names) for r in rows])
              for t, names, rows in tables if rows]
    con.execute("BEGIN TRANSACTION")
    try:
        known = con.execute("SELECT count(*) FROM runs WHERE run_id = ?",
                            [lineage.run_id]).fetchall()[0][0]
        if known:
            for table in TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [lineage.run_id])
        for table, names, rows in values:
            appender = con.appender(table, columns=names)
            appender.append_rows(rows)
            appender.flush()
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):  # e.g. a full disk ended it already
            con.execute("ROLLBACK")
        raise


def _wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}.wal").st_size
    except FileNotFoundError:
        return 0


class _Retry(Exception):
    pass


def _wait(fn: Any, retry_on: type[BaseException], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return fn()
        except retry_on:
            if time.monotonic() >= deadline:
                raise LineageBusy(f"gave up after {timeout:.0f}s: {what}",
                                  hint="try again when the other blut command has finished") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _too_new(path: Path, version: int) -> ConfigError:
    return ConfigError(f"lineage database {path} has schema version {version}; this blut "
                       f"understands up to {SCHEMA_VERSION}",
                       hint="upgrade blut, or move the file away and run `blut lineage reindex`")


def migrate(con: Any, path: Path) -> int:
    """Bring an open read-write database to :data:`SCHEMA_VERSION`; returns the old version."""
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise _too_new(path, version)
    if version == SCHEMA_VERSION:
        return version
    con.execute("BEGIN TRANSACTION")
    try:
        for v in range(version + 1, SCHEMA_VERSION + 1):
            for statement in migrations()[v]:
                con.execute(statement)
        con.execute("UPDATE blut_meta SET value = ? WHERE key = 'schema_version'",
                    [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return version


def open_lineage(home: Path) -> DuckDBLineage:
    """The sink factory (``LineageSinkSpec.factory``): fails when DuckDB is not installed.

    It only looks DuckDB up (importing it costs ~0.1 s, paid at ingest, not at run start).
    """
    import importlib.util

    if importlib.util.find_spec("duckdb") is None:
        raise ModuleNotFoundError("the duckdb package is not installed (pip install duckdb)")
    return DuckDBLineage(home)


@hookimpl
def blut_lineage_sinks() -> Iterator[LineageSinkSpec]:
    from blut_core import LineageSinkSpec

    yield LineageSinkSpec(name="duckdb", summary=f"embedded DuckDB index, $BLUT_HOME/{DB_NAME}",
                          factory=open_lineage)


__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "DuckDBLineage",
    "LineageBusy",
    "LineageMissing",
    "migrate",
    "migrations",
    "open_lineage",
    "schema_version",
]
