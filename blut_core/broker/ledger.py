"""The booking ledger every blut process on this machine shares.

Admission books each launched stage's footprint here and releases it when the stage ends,
so two ``blut run``s started at once cannot both give out the same free memory: a decision
and its booking happen under one exclusive ``flock``.

Where: ``$BLUT_LEDGER`` if set; else ``/run/blut/ledger.json`` when ``/run/blut`` can be
created and written (root, or a group-writable directory made by the administrator); else
``/tmp/blut-<uid>/ledger.json``. It is machine-wide on purpose: two processes with
different ``BLUT_HOME`` still share one machine's memory.

A booking names its process (pid and start time, so a reused pid is not mistaken for the
booker) and, once the stage started, the stage's cgroup. Every read reclaims the bookings
of dead processes, and only those: a live booker releases its bookings itself, and it may
hold one after its stage's cgroup is gone (a stage is uncaged as soon as it exits, and its
booking is released once the run has recorded it as finished), so a cgroup that is gone or
empty says nothing while the booker lives. A stage that outlived its booker (the driver was
killed, the stage runs on in its cgroup) keeps its booking until its cgroup is empty or
gone: it still holds memory and may grow to its cap. A booking counts only for what its
stage does not use yet (``bytes − anonymous memory of its cgroup``): what it already uses
is no longer in MemAvailable.

A run may also hold a :class:`Lease`: one booking it gives out to its small stages in
memory, without the lock; every other process counts all of it as booked.

A write is one ``pwrite`` of the whole document at offset 0, padded with spaces to the
previous length, so that a process killed at any moment leaves either the old ledger or the
new one, never half of one; replacing the file instead would cost a rename and freeing the
old inode on every booking. When the padding outgrows the text the file is compacted by one
atomic rename.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from blut_core.broker import cgroups
from blut_core.errors import ConfigError, DiskFull, is_disk_full
from blut_core.model.reprs import record_repr
from blut_core.store.rundir import ensure_file_writable, ensure_space

COMPACT_SLACK = 4096  # padding bytes tolerated before the file is rewritten at its size
LEDGER_START = b'{"version":'  # how every ledger this module writes begins
LEDGER_ROOM = 16 << 10  # free space a run wants for its bookings before it starts
_HINT = ("set BLUT_LEDGER to a file in a directory you can write to (every blut on this "
         "machine must use the same one), or unset it")


def default_ledger_path(environ: Mapping[str, str] | None = None) -> Path:
    """The machine-wide ledger file (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    given = env.get("BLUT_LEDGER", "").strip()
    if given:
        return Path(given).expanduser()
    run = Path("/run/blut")
    with contextlib.suppress(OSError):
        run.mkdir(mode=0o755, exist_ok=True)
        if run.is_dir() and os.access(run, os.W_OK):
            return run / "ledger.json"
    return Path(f"/tmp/blut-{os.getuid()}") / "ledger.json"


def process_start(pid: int | str = "self") -> int | None:
    """The process's start time in clock ticks since boot (``None``: no such process)."""
    # a raw read, not psutil: ~14 µs against ~72 µs a booking, checked on every admission pass
    text = cgroups.read_text(f"/proc/{pid}/stat")
    if not text:
        return None
    try:
        return int(text[text.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


@functools.cache
def _own_start() -> int | None:
    """This process's start time (it does not change while we live)."""
    return process_start()


@attrs.frozen(kw_only=True)
class Booking:
    """Memory promised to one running (or starting) stage."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    id: str
    bytes: int
    label: str
    pid: int
    start: int | None
    created: float
    cgroup: str | None = None

    def alive(self) -> bool:
        """Whether the booking still holds memory: its booker lives (this process's own
        bookings by definition), or its stage outlived the booker and still runs in its
        cgroup. A live booker's booking is never reclaimed, whatever its cgroup says."""
        if self.pid == os.getpid() and self.start == _own_start():
            return True
        start = process_start(self.pid)
        if start is not None and start == self.start:
            return True
        return self.cgroup is not None and bool(cgroups.procs(self.cgroup))

    def outstanding(self) -> int:
        """What this booking still holds back: bytes its stage does not use yet."""
        if self.cgroup is None:
            return self.bytes
        used = cgroups.anon_bytes(self.cgroup)
        return self.bytes if used is None else max(0, self.bytes - used)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Ledger:
    """The shared file of bookings, and transactions over it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dir_ready = False
        self._size = 0  # length of the file as last read or written (under the lock)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def check(self) -> None:
        """Raise a one-line :class:`ConfigError` now when the ledger cannot be used (its path
        is a directory, a parent is a file, or the place cannot be written), so that a run
        learns it before it starts rather than at its first booking."""
        ensure_file_writable(self.path, what="booking ledger", hint=_HINT)
        ensure_file_writable(self.lock_path, what="booking ledger lock", hint=_HINT)
        self._dir_ready = True
        try:  # a file that is not a ledger is refused, never overwritten
            with open(self.path, "rb") as fh:
                head = fh.read(len(LEDGER_START))
        except OSError:
            head = b""
        if _foreign(head):
            raise self._foreign()
        ensure_space(self.path.parent, LEDGER_ROOM, what="the booking ledger")

    def _foreign(self) -> ConfigError:
        return ConfigError(f"booking ledger {self.path} holds something else than a blut "
                           "ledger; blut will not overwrite it", hint=_HINT)

    def _unusable(self, exc: OSError) -> ConfigError:
        if is_disk_full(exc):
            return DiskFull(exc.filename or self.path, hint=f"free space there, or {_HINT}")
        return ConfigError(f"booking ledger {self.path} cannot be used: {exc.strerror or exc}"
                           + (f" ({exc.filename})" if exc.filename else ""), hint=_HINT)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the ledger exclusively: read (reclaiming the dead), change, write back."""
        try:
            if not self._dir_ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._dir_ready = True
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise self._unusable(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = self._read()
            live = [b for b in stored if b.alive()]
            txn = Transaction(live)
            yield txn
            if txn.changed or len(live) != len(stored):
                self._write(txn.bookings)
        finally:
            os.close(fd)

    def bookings(self) -> list[Booking]:
        """Current bookings (the dead reclaimed on the way)."""
        with self.transaction() as txn:
            return list(txn.bookings)

    def release(self, booking_id: str) -> None:
        """Drop one booking (idempotent)."""
        with self.transaction() as txn:
            txn.release(booking_id)

    def attach(self, booking_id: str, cgroup: str | None) -> None:
        """Record the cgroup the booked stage runs in."""
        if cgroup is None:
            return
        with self.transaction() as txn:
            txn.attach(booking_id, cgroup)

    def _read(self) -> list[Booking]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._size = 0
            return []
        except OSError:
            return []
        self._size = len(raw)
        try:  # trailing NULs: killed between reserving room for a longer document and writing it
            data = json.loads(raw.rstrip(b"\0"))
            return [Booking(**b) for b in data["bookings"]]
        except (ValueError, TypeError, KeyError):
            if _foreign(raw):
                raise self._foreign() from None
            return []  # a torn ledger: start over; live stages rebook on their next pass

    def _write(self, bookings: list[Booking]) -> None:
        """Write the ledger in one ``pwrite`` (see the module docstring); compact when padded."""
        data = json.dumps({"version": 1, "bookings": [b.to_json() for b in bookings]},
                          separators=(",", ":")).encode() + b"\n"
        size = self._size
        try:
            if size - len(data) > COMPACT_SLACK or not self.path.exists():
                self._replace(data)
                return
            fd = os.open(self.path, os.O_WRONLY)
            try:
                if len(data) > size:  # room first: a full disk must not tear the document
                    _allocate(fd, len(data))
                os.pwrite(fd, data.ljust(size), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path, needed=len(data), hint=f"free space there, or {_HINT}") from None
            raise self._unusable(exc) from None
        self._size = max(size, len(data))

    def _replace(self, data: bytes) -> None:
        """Replace the file in one rename (a reader never sees half a ledger)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                os.fchmod(fd, 0o644)  # readable by every user's blut, whatever the umask
                _allocate(fd, len(data))
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._size = len(data)


def _foreign(raw: bytes) -> bool:
    """Whether ``raw`` (a file's start) is neither empty nor the start of a ledger document."""
    text = raw.strip(b"\0 \n")[: len(LEDGER_START)]
    return bool(text) and not LEDGER_START.startswith(text)


def _allocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes of ``fd`` (``ENOSPC`` now, not halfway through a write)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


class Transaction:
    """The bookings while the ledger is held; ``book`` and ``release`` change them."""

    def __init__(self, bookings: list[Booking]) -> None:
        self.bookings = bookings
        self.changed = False

    def outstanding(self) -> int:
        """Bytes promised and not yet in use, over every live booking."""
        return sum(b.outstanding() for b in self.bookings)

    def book(self, nbytes: int, label: str) -> Booking:
        """Promise ``nbytes`` to ``label`` on behalf of this process."""
        booking = Booking(id=os.urandom(6).hex(), bytes=nbytes, label=label, pid=os.getpid(),
                          start=_own_start(), created=time.time())
        self.bookings.append(booking)
        self.changed = True
        return booking

    def release(self, booking_id: str) -> None:
        self.release_all([booking_id])

    def release_all(self, booking_ids: Sequence[str]) -> None:
        ids = set(booking_ids)
        before = len(self.bookings)
        self.bookings = [b for b in self.bookings if b.id not in ids]
        self.changed = self.changed or len(self.bookings) != before

    def attach(self, booking_id: str, cgroup: str) -> None:
        self.bookings = [attrs.evolve(b, cgroup=cgroup, created=time.time())
                         if b.id == booking_id else b for b in self.bookings]
        self.changed = True

    def resize(self, booking_id: str, nbytes: int) -> None:
        """Change what booking ``booking_id`` holds to ``nbytes``."""
        self.bookings = [attrs.evolve(b, bytes=nbytes) if b.id == booking_id else b
                         for b in self.bookings]
        self.changed = True


LEASE_LABEL = "(lease: small stages)"  # how a lease shows in ``blut broker ledger``


class Lease:
    """Memory this process holds in the ledger as one booking and gives out to its small
    stages itself, so that admitting one takes no lock and writes nothing.

    Everyone else counts the whole lease as booked (it names no cgroup), so what this
    process has given out (``used``) is always covered by what the ledger holds for it
    (``bytes``): :meth:`resize` never goes below ``used``. The holder grows it, in a
    transaction, when a stage does not fit what is left (``slack``), and gives memory back
    when it idles, when it finishes, and when too much of it lies unused.

    A lease names no cgroup, so a killed holder's lease is reclaimed at once; a stage that
    outlives it is then counted by what it uses (MemAvailable), not by what it may still
    take. The holder therefore moves a stage that runs on from its lease to a booking of its
    own (with its cgroup) after a fraction of a second: only short stages stay on a lease.
    """

    def __init__(self) -> None:
        self.id: str | None = None
        self.bytes = 0
        self.used = 0
        self.given: dict[str, int] = {}

    @property
    def slack(self) -> int:
        """Leased and not given out."""
        return max(0, self.bytes - self.used)

    def give(self, name: str, nbytes: int) -> None:
        """Give ``nbytes`` of the slack to stage ``name``."""
        self.given[name] = self.given.get(name, 0) + nbytes
        self.used += nbytes

    def take_back(self, name: str) -> bool:
        """Stage ``name`` ended: what it was given is slack again (False: it had none)."""
        nbytes = self.given.pop(name, None)
        if nbytes is None:
            return False
        self.used -= nbytes
        return True

    def sync(self, txn: Transaction) -> None:
        """Book again what is given out when the lease is no longer in the ledger (a torn
        ledger was started over)."""
        if self.id is not None and not any(b.id == self.id for b in txn.bookings):
            self.id, self.bytes = None, 0
            self.resize(txn, self.used)

    def resize(self, txn: Transaction, nbytes: int) -> None:
        """Hold ``nbytes`` (never less than is given out; 0 drops the booking)."""
        nbytes = max(nbytes, self.used)
        if self.id is None:
            if nbytes > 0:
                self.id = txn.book(nbytes, LEASE_LABEL).id
        elif nbytes == 0:
            txn.release(self.id)
            self.id = None
        elif nbytes != self.bytes:
            txn.resize(self.id, nbytes)
        self.bytes = nbytes
