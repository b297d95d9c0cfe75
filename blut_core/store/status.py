"""The status stream (``status.jsonl``): a run's lifecycle events, appended one line each.

Written by :class:`StatusLog` (each line, or each batch of lines, in one ``write``), read
back by :func:`read_status`, which tells a last line a killed driver cut short (normal)
from damage. What must be written when is the rule in :class:`StatusLog`.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from blut_core.errors import DiskFull, is_disk_full

STATUS = "status.jsonl"
#: one encoder for every event line (``json.dumps(..., default=str)`` builds one a call)
_ENCODE = json.JSONEncoder(default=str).encode


class StatusLog:
    """Appends events to ``status.jsonl``; each line is written in one ``write``.

    What a stream promises, and when an event must be written: resume (and ``runs show``)
    reads the stream after the driver was killed (``kill -9``, a crash). An event handed to
    the kernel survives that (the page cache outlives the process), so an event needs to be
    *written* before the step that relies on it, not fsynced. The rule: a stage's
    ``stage_finished`` or ``stage_skipped`` is written before any stage that reads its
    output is launched (resume keeps a finished stage only from that event), and the stream
    is written before the driver blocks (waits for a process, sleeps) or ends. What else a
    driver killed inside a batch loses costs nothing but a re-run: a ``stage_admitted`` or
    ``stage_started`` (resume finds the attempt's processes by their environment, and a
    leftover attempt directory is replaced), metrics, heartbeats. Nothing in a run directory
    is fsynced (outputs neither), so an fsync of this stream alone would not make a stage
    safe to keep after a power cut; :meth:`sync` is there for a caller that wants one.

    :meth:`batch` holds the events of one loop turn and writes them in one ``write``::

        with status.batch():      # nested batches write once, when the outermost ends
            status.append("stage_finished", ...)
            status.append("stage_admitted", ...)
        # written here, even when the block raised

    :meth:`flush` writes what a batch holds so far (e.g. before launching a dependent).
    """

    _buffer: list[bytes] | None = None  # the lines a batch holds, not written yet

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _mend_tail(self._fd, path)

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event line (held until its batch ends, inside :meth:`batch`). On a
        full disk the stream is left as it was (a line written in part is cut off again)
        and :class:`DiskFull` is raised."""
        record = {"event": event, "t": round(time.time(), 6), **fields}
        line = (_ENCODE(record) + "\n").encode()
        if self._buffer is not None:
            self._buffer.append(line)
        else:
            self._write(line)
        return record

    def append_many(self, events: Iterable[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """Append ``(event, fields)`` pairs in one ``write``; the records, as :meth:`append`."""
        with self.batch():
            return [self.append(event, **fields) for event, fields in events]

    @contextlib.contextmanager
    def batch(self) -> Iterator[StatusLog]:
        """Hold the events appended inside, and write them in one ``write`` on leaving (also
        when the block raises). Inside a batch already, the outermost one writes."""
        if self._buffer is not None:
            yield self
            return
        self._buffer = []
        try:
            yield self
        finally:
            try:
                self.flush()
            finally:
                self._buffer = None

    def flush(self) -> None:
        """Write what the current batch holds so far (nothing outside a batch)."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._write(data)

    def sync(self) -> None:
        """Write what a batch holds and fsync the stream (for a power cut, not a kill)."""
        self.flush()
        os.fsync(self._fd)

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path, needed=len(data)) from None
            raise
        if written != len(data):  # the file system filled up in the middle of the lines
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise DiskFull(self.path, needed=len(data))

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


def _mend_tail(fd: int, path: Path) -> None:
    """End a stream whose last line a killed driver left cut short, before appending to it.

    The cut-off start of an event line is removed (it cannot be read anyway); anything else
    without its newline gets one. Either way the next event starts on a line of its own.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 1))
        if fh.read(1) == b"\n":
            return
        start = size
        while start > 0:                          # back to the last newline
            step = min(start, 65536)
            fh.seek(start - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        fh.seek(start)
        tail = fh.read()
    if _torn(tail) and not isinstance(_parse_line(tail), dict):
        os.ftruncate(fd, start)
    else:  # a whole event without its newline, or garbage that is left to be seen
        os.write(fd, b"\n")


class StatusStream(NamedTuple):
    """A status stream as read back: the events that could be read, and what is wrong.

    ``problem`` names what makes the stream damaged (a line in the middle that is not a JSON
    event, text that is not UTF-8, an unreadable file); ``torn`` says its last line was cut
    short, which is what a driver killed in the middle of a write leaves, and is normal.
    """

    events: list[dict[str, Any]]
    problem: str | None = None
    torn: bool = False


def _parse_line(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:                             # UnicodeDecodeError is one
        return None


def _torn(tail: bytes) -> bool:
    """Whether ``tail`` (what follows the last newline) is the start of an event line."""
    if not tail.startswith(b"{"):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(tail, final=False)
    except UnicodeDecodeError:
        return False
    return True


def read_status(path: Path) -> StatusStream:
    """Read a status stream, telling a torn last line (normal) from damage (garbage).

    Every line is one JSON object (:class:`StatusLog` writes each in one ``write``). The
    lines are parsed as one JSON array (~3x faster than line by line) unless that fails or
    yields another number of values; then line by line, keeping what can be read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return StatusStream([], f"{STATUS} is missing")
    except IsADirectoryError:
        return StatusStream([], f"{STATUS} is a directory")
    except OSError as exc:
        return StatusStream([], f"{STATUS} cannot be read ({exc.strerror or exc})")
    body, _, tail = data.rpartition(b"\n")
    events: list[dict[str, Any]] = []
    torn = False
    if tail.strip():
        torn = _torn(tail)
        if not torn:
            body = data                           # garbage after the last newline: a bad line
    try:
        lines = [ln for ln in body.decode("utf-8").split("\n") if ln.strip()]
        values = json.loads("[" + ",".join(lines) + "]")
        fast = isinstance(values, list) and len(values) == len(lines) and \
            all(isinstance(v, dict) for v in values)
    except ValueError:
        fast = False
    problem = None
    if fast:
        events = values
    else:
        bad: list[tuple[int, str]] = []
        for number, raw in enumerate(body.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad.append((number, "is not UTF-8 text"))
                continue
            except ValueError:
                bad.append((number, "is not JSON"))
                continue
            if isinstance(value, dict):
                events.append(value)
            else:
                bad.append((number, "is not a JSON object"))
        if bad:
            number, what = bad[0]
            more = f" ({len(bad)} of its lines cannot be read)" if len(bad) > 1 else ""
            problem = f"{STATUS} line {number} {what}{more}"
    if torn:
        last = _parse_line(tail)
        if isinstance(last, dict):                # complete, only its newline is missing
            events.append(last)
    return StatusStream(events, problem, torn)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a status stream; a torn or garbled line is skipped, never fatal."""
    yield from read_status(path).events
