"""The run directory: the source of truth for a run.

Layout under ``$BLUT_HOME/runs/<run-id>/`` (the status stream: :mod:`blut_core.store.status`)::

    plan.json          the validated plan, stages in dependency order
    params.json        the recipe's structured params
    provenance.json    git, Python, blut and plugin versions, host, CPU, RAM
    status.jsonl       append-only lifecycle events (one JSON object per line)
    driver.json        pid and start time of the blut process driving the run
    stages/<name>/out/                 promoted outputs (only after success)
    stages/<name>/checkpoint/          what ctx.checkpoint() saved
    stages/<name>/attempts/<n>/        context.json, stdout.log, stderr.log, events.jsonl

A run is set up under ``$BLUT_HOME/runs/.setup/<run-id>/`` and renamed into ``runs/`` once
its plan, params, provenance and ``run_started`` event are written, so every run directory a
command sees is whole (:meth:`RunDir.begin`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from blut_core.errors import ConfigError, DiskFull, free_bytes, is_disk_full
from blut_core.store.status import STATUS as STATUS
from blut_core.store.status import StatusLog as StatusLog
from blut_core.store.status import StatusStream as StatusStream
from blut_core.store.status import read_events as read_events
from blut_core.store.status import read_status as read_status

#: Where run directories are set up before they are published into ``runs/``.
SETUP = ".setup"


def new_run_id(recipe: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    short = recipe.split(":")[-1].replace("_", "-")[:24]
    return f"{stamp}-{short}-{os.urandom(3).hex()}"


def ensure_writable(root: Path, *, what: str = "BLUT_HOME",
                    hint: str = "set BLUT_HOME to a directory you can write to") -> None:
    """Create directory ``root`` if needed and prove it is writable, or raise a one-line
    :class:`ConfigError` (``root``, or a parent of it, being a file says so)."""
    if not root.is_dir():
        blocker = _file_in_the_way(root)
        if blocker is not None:
            which = "it" if blocker == root else str(blocker)
            raise ConfigError(f"{what} {root} is not writable: {which} is a file, not a directory",
                              hint=hint)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK | os.X_OK):  # the usual case, without writing anything
            return
        probe = root / f".write-test-{os.getpid()}"  # to learn why not (or that it can)
        probe.write_bytes(b"")
        probe.unlink()
        return
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(root, hint=None) from None
        raise ConfigError(f"{what} {root} is not writable: {exc.strerror or exc}",
                          hint=hint) from None


def ensure_file_writable(path: Path, *, what: str, hint: str) -> None:
    """Prove that file ``path`` can be created or updated (its directory is made if needed),
    or raise a one-line :class:`ConfigError`: ``path`` is a directory, a parent is a file,
    or the place cannot be written. An existing file is never changed."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; it must name a file", hint=hint)
    ensure_writable(path.parent, what=f"{what} {path}: its directory", hint=hint)
    if path.exists() and not os.access(path, os.W_OK):
        try:
            os.close(os.open(path, os.O_WRONLY))  # to learn why not
        except OSError as exc:
            raise ConfigError(f"{what} {path} is not writable: {exc.strerror or exc}",
                              hint=hint) from None


def ensure_space(root: Path, needed: int, *, what: str) -> None:
    """Raise :class:`DiskFull` now when the file system of ``root`` has less than ``needed``
    bytes free, before anything of ``what`` is written."""
    free = free_bytes(root)
    if free is not None and free < needed:
        raise DiskFull(root, needed=needed, what=what)


def _file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists and is not a directory."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename.

    On a full disk nothing is left behind (neither the temporary file nor a partial
    ``path``) and :class:`DiskFull` names ``path`` and the bytes it needed.
    """
    text = json.dumps(data, sort_keys=True, default=str)  # the C encoder: fast
    if len(text) <= _INDENTED_UP_TO:  # small documents are indented, for people to read
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
    write_bytes_atomic(path, (text + "\n").encode())


#: JSON documents up to this many bytes are written indented; larger ones (a plan of many
#: stages) on one line, since the indenting encoder is pure Python and ~10x slower
_INDENTED_UP_TO = 16 << 10


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path``; on a full disk the partial file is removed and
    :class:`DiskFull` names ``path`` and the bytes it needed."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        with contextlib.suppress(OSError):
            path.unlink()
        raise DiskFull(path, needed=len(data)) from None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (see above)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if is_disk_full(exc):
            raise DiskFull(path, needed=len(data)) from None
        raise


class RunDir:
    """Paths and writers of one run directory.

    A stage's paths are built once and kept (a ``Path`` join costs microseconds, and the
    executor asks for each several times); a stage whose directories this object made or
    found needs one ``mkdir`` per further attempt.
    """

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = path
        self.run_id = path.name
        self._stage_dirs: dict[str, Path] = {}
        self._paths: dict[tuple[str, str], Path] = {}  # (stage, what) → out/checkpoint/attempts
        self._attempt_dirs: dict[tuple[str, int], Path] = {}
        self._made: set[str] = set()  # stages whose attempts/ directory exists
        #: made by this process (:meth:`create`): it holds no attempt directory it did not make
        self.fresh = fresh

    @classmethod
    def create(cls, runs_root: Path, run_id: str) -> RunDir:
        """A new run directory, made where it will stay (see :meth:`begin` for set-up)."""
        path = runs_root / run_id
        path.mkdir(parents=True)
        (path / "stages").mkdir()
        rd = cls(path, fresh=True)
        rd.claim()
        return rd

    @classmethod
    def begin(cls, runs_root: Path, run_id: str) -> RunDir:
        """A new run directory, set up under ``runs/.setup/<run-id>`` (no command sees it).

        Write what a run needs there (plan, params, provenance, the ``run_started`` event),
        then :meth:`publish` moves it into ``runs/`` with one rename: a driver killed before
        that leaves no run at all, one killed after it leaves a whole one.
        """
        setup = runs_root / SETUP
        for _ in range(100):
            setup.mkdir(parents=True, exist_ok=True)
            try:
                return cls.create(setup, run_id)
            except FileNotFoundError:  # another run's publish removed runs/.setup meanwhile
                continue
        return cls.create(setup, run_id)

    def publish(self, runs_root: Path) -> None:
        """Move a directory made by :meth:`begin` to ``runs_root/<run-id>`` (one rename)."""
        final = runs_root / self.run_id
        os.rename(self.path, final)
        with contextlib.suppress(OSError):  # not empty while another run is being set up
            os.rmdir(runs_root / SETUP)
        self.path = final
        self._stage_dirs.clear()
        self._paths.clear()
        self._attempt_dirs.clear()

    def claim(self) -> None:
        """Record this process as the run's driver (``driver.json``)."""
        write_json_atomic(self.path / "driver.json", {
            "pid": os.getpid(), "host": os.uname().nodename, "started": time.time(),
            "create_time": _proc_start(os.getpid()),
        })

    @property
    def status_path(self) -> Path:
        return self.path / STATUS

    def stage_dir(self, stage: str) -> Path:
        found = self._stage_dirs.get(stage)
        if found is None:
            found = self._stage_dirs[stage] = self.path / "stages" / stage
        return found

    def _under(self, stage: str, what: str) -> Path:
        found = self._paths.get((stage, what))
        if found is None:
            found = self._paths[(stage, what)] = self.stage_dir(stage) / what
        return found

    def out_dir(self, stage: str) -> Path:
        return self._under(stage, "out")

    def attempt_dir(self, stage: str, attempt: int) -> Path:
        found = self._attempt_dirs.get((stage, attempt))
        if found is None:
            found = self._attempt_dirs[(stage, attempt)] = self._under(stage, "attempts") / str(attempt)
        return found

    def checkpoint_dir(self, stage: str) -> Path:
        return self._under(stage, "checkpoint")

    def new_attempt(self, stage: str, attempt: int) -> Path:
        """A fresh, empty directory for ``attempt`` of ``stage`` (a leftover one is replaced).

        A stage's first attempt makes ``stages/NAME``, its ``attempts/`` and the attempt's
        own directory (three ``mkdir``, the fewest this layout allows); a later one only its
        own."""
        path = self.attempt_dir(stage, attempt)
        if stage not in self._made:
            try:
                os.mkdir(self.stage_dir(stage))
            except FileExistsError:  # a retry by an earlier driver, a cached output, resume
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self._under(stage, "attempts"))
            else:
                os.mkdir(self._under(stage, "attempts"))
            self._made.add(stage)
        try:
            os.mkdir(path)
        except FileExistsError:  # resumed after a crash mid-attempt
            shutil.rmtree(path)
            os.mkdir(path)
        except FileNotFoundError:  # its stage directory was removed meanwhile
            self._made.discard(stage)
            os.makedirs(path.parent, exist_ok=True)
            os.mkdir(path)
            self._made.add(stage)
        return path

    def promote(self, stage: str, tmp_out: Path) -> Path:
        """Move a successful attempt's output into place with one rename (an output there
        already, from an earlier attempt or a cache hit, is replaced)."""
        dest = self.out_dir(stage)
        try:
            os.replace(tmp_out, dest)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dest.is_dir():
                raise
            shutil.rmtree(dest)
            os.replace(tmp_out, dest)
        return dest


SETUP_GRACE = 600.0  # seconds a set-up directory without a readable driver.json is left alone


def sweep_setups(runs_root: Path) -> list[Path]:
    """Remove what drivers killed during set-up left under ``runs/.setup/``; returns it.

    Such a directory never became a run (nothing shows it, nothing can resume it). One whose
    driver still lives is being set up and is left alone.
    """
    setup = runs_root / SETUP
    try:
        names = os.listdir(setup)
    except OSError:
        return []
    removed = []
    for name in names:
        path = setup / name
        try:
            info = json.loads((path / "driver.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
        if info is None:
            try:
                if time.time() - path.stat().st_mtime < SETUP_GRACE:
                    continue  # its driver may not have written driver.json yet
            except OSError:
                continue
        elif driver_alive(path, info):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _proc_start(pid: int) -> float | None:
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid apart).

    A raw read of ``/proc``: this runs as every run starts, where importing psutil would add
    ~11-16 ms (liveness checks, off that path, use psutil).
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return float(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, start_ticks: float | None) -> bool:
    """Whether process ``pid`` exists and (when ``start_ticks`` is given) is the one that
    started at that many clock ticks after boot, not a later process that got its pid."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if start_ticks is None:
            return True
        ticks = (proc.create_time() - psutil.boot_time()) * os.sysconf("SC_CLK_TCK")
    except (psutil.Error, ValueError):
        return False
    return abs(ticks - float(start_ticks)) < 1.5


def driver_alive(run_path: Path, info: Any = None) -> bool:
    """Whether the blut process that drove this run still exists (same pid, same start).

    ``info``: the run's ``driver.json`` when already read.
    """
    if info is None:
        try:
            info = json.loads((run_path / "driver.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
    if not isinstance(info, dict):
        return False
    if info.get("host") != os.uname().nodename:
        return True  # another machine: we cannot tell, assume alive
    pid = info.get("pid")
    start = info.get("create_time")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    return process_alive(pid, start if isinstance(start, (int, float)) else None)


def tail_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log file (its last 4 KiB), cut to ``limit`` characters."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
