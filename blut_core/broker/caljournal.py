"""The calibration store's files: a snapshot, and a journal of the updates made since.

A flush costs what it learnt, not what the store holds: it appends its updates to the
journal (one ``write`` and one ``fsync``, under the store's ``flock``), and a reader parses
only the keys it asks for. Now and then a flush folds the journal into a new snapshot.

``calibration.json``, the snapshot, is a version-1 JSON document laid out one entry a line
(an older blut reads it as it always did; a store in the old layout is read whole and
rewritten in this one by its first flush)::

    {"version": 1, "journal": "<token>", "entries": {
    "<key>": {<entry>},
    "<key>": {<entry>}
    }}

``calibration.json.journal`` continues the snapshot whose token its first line names, then
holds one update a line, ``"<key>": {<update>}``, in the order they were made (updates are
merges, replayed in that order, so two runs learning at once both keep what they learnt).
A last line without its newline was cut short by a killed writer: it is ignored, and cut
off before the next append. Folding writes the new snapshot (temporary file, fsync, rename)
under a new token, then removes the journal: a journal naming another snapshot's token is
already in it, and is never replayed twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from blut_core.errors import free_bytes, is_disk_full
from blut_core.host.log import get_logger

VERSION = 1
#: The journal is folded into the snapshot once it is larger than this and than half of it.
FOLD_BYTES = 256 * 1024
_TAIL = "}}"


def _head(token: str) -> str:
    return f'{{"version": {VERSION}, "journal": {json.dumps(token)}, "entries": {{'


def key_line(key: str, value: Mapping[str, Any]) -> str:
    """One line of the snapshot or the journal (without its newline)."""
    return json.dumps(key) + ": " + json.dumps(value, separators=(",", ":"))


def _split(line: str) -> tuple[str, str]:
    """``(key, value text)`` of a line ``"<key>": <value>`` (``ValueError`` if it is not)."""
    if not line.startswith('"'):
        raise ValueError("not a keyed line")
    key, end = scanstring(line, 1)
    if line[end:end + 2] != ": ":
        raise ValueError("not a keyed line")
    return key, line[end + 2:]


class Corrupt(ValueError):
    """The snapshot cannot be read as a calibration store."""


class CalibrationFiles:
    """The snapshot and journal at ``path``, each value parsed only on demand.

    :meth:`lookup` finds one key's lines in the text read (a substring search: microseconds
    however large the store); :attr:`entries` and :attr:`updates` index every key, for what
    needs them all (listing, folding): ``entries`` maps a key to its entry's JSON text (or
    its parsed value, from a snapshot in the old layout), ``updates`` to the JSON texts of
    its journal lines, oldest first.
    """

    def __init__(self, path: Path, *, fold_bytes: int = FOLD_BYTES) -> None:
        self.path = path
        self.journal = path.with_name(path.name + ".journal")
        self.lock = path.with_name(path.name + ".lock")
        self.fold_bytes = fold_bytes
        self._snapshot = b""            # as read (lined layout): its entry lines, each after a
        self._lines = (0, 0)            # newline, lie between these offsets
        self._entries: dict[str, Any] | None = {}
        self._journal = b"\n"           # the journal's whole update lines, each after a newline
        self._updates: dict[str, list[str]] | None = {}
        self.token: str | None = None   # of the snapshot read (None: none, or an old one)
        self.lined = False              # the snapshot is in the one-entry-a-line layout
        self.size = 0                   # of the snapshot read
        self.offset = 0                 # bytes of the journal read
        self.needed = 0                 # bytes the last append wrote (or tried to)

    # -- reading ------------------------------------------------------------------------

    def load(self) -> None:
        """Read the snapshot and the journal that continues it (``Corrupt``: the snapshot
        cannot be read). The journal is opened first: a fold between the two reads leaves
        a journal naming another token, which the new snapshot already holds."""
        self._clear()
        journal = self._read_bytes(self.journal)
        snapshot = self._read_bytes(self.path)
        self.size = len(snapshot or b"")
        if snapshot is not None:
            self._read_snapshot(snapshot)
        if journal is not None and self.token is not None:
            self._take_journal(journal, 0)

    def _clear(self) -> None:
        self._snapshot, self._lines, self._entries = b"", (0, 0), {}
        self._journal, self._updates = b"\n", {}
        self.offset, self.token, self.lined = 0, None, False

    def _read_bytes(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            get_logger().warning("calibration_unreadable", path=str(path), error=str(exc))
            return None

    def _read_snapshot(self, raw: bytes) -> None:
        """Take in a snapshot: in the lined layout only its first line is parsed (and
        nothing is decoded: a lookup decodes the line it finds)."""
        first, end = raw.find(b"\n"), len(raw)
        while end and raw[end - 1] in b" \t\r\n":  # (no copy of the whole, as rstrip makes)
            end -= 1
        if first > 0 and raw.startswith(b'{"version"') and raw[:first].endswith(b'"entries": {') \
                and raw[end - len(_TAIL) - 1:end] == b"\n" + _TAIL.encode():
            try:
                head = json.loads(raw[:first].decode("utf-8") + _TAIL)
            except ValueError:
                head = None
            if isinstance(head, dict) and isinstance(head.get("journal"), str):
                self._snapshot, self._entries = raw, None  # indexed on demand
                self._lines = (first, end - len(_TAIL))
                self.token, self.lined = head["journal"], True
                return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Corrupt(str(exc)) from None
        data = _parse_whole(text)  # the old layout (or one edited by hand)
        self._entries = dict(data["entries"])
        token = data.get("journal")
        self.token = token if isinstance(token, str) else None

    @property
    def entries(self) -> dict[str, Any]:
        if self._entries is None:
            entries: dict[str, Any] = {}
            start, end = self._lines
            try:
                body = self._snapshot[start:end].decode("utf-8")
                for line in body.split("\n"):
                    if line:
                        key, value = _split(line)
                        entries[key] = value[:-1] if value.endswith(",") else value
            except ValueError:  # not one entry a line after all: read as JSON, or corrupt
                try:
                    text = self._snapshot.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise Corrupt(str(exc)) from None
                entries = dict(_parse_whole(text)["entries"])
            self._entries = entries
        return self._entries

    @property
    def updates(self) -> dict[str, list[str]]:
        if self._updates is None:
            self._updates = {}
            self._index_updates(self._journal)
        return self._updates

    def keys(self) -> set[str]:
        """Every key the snapshot or the journal holds."""
        return set(self.entries) | set(self.updates)

    def lookup(self, key: str) -> tuple[Any, list[str]]:
        """``(entry, updates)`` of ``key``, as :attr:`entries` and :attr:`updates` hold them."""
        needle = ("\n" + json.dumps(key) + ": ").encode()
        value: Any
        if self._entries is not None:
            value = self._entries.get(key)
        else:
            start, end = self._lines
            at = self._snapshot.find(needle, start, end)
            value = None if at < 0 else _value_at(self._snapshot, at + len(needle), end)
            if value is not None and value.endswith(","):
                value = value[:-1]
        if self._updates is not None:
            return value, list(self._updates.get(key, ()))
        found, at = [], self._journal.find(needle)
        while at >= 0:
            found.append(_value_at(self._journal, at + len(needle), len(self._journal)))
            at = self._journal.find(needle, at + len(needle))
        return value, found

    def _index_updates(self, raw: bytes) -> set[str]:
        """Index the update lines of ``raw`` (when :attr:`updates` is indexed); their keys."""
        touched: set[str] = set()
        for line in raw.decode("utf-8", errors="replace").split("\n"):
            if not line:
                continue
            try:
                key, value = _split(line)
            except ValueError:
                get_logger().warning("calibration_journal_line_skipped", path=str(self.journal),
                                     line=line[:120])
                continue
            if self._updates is not None:
                self._updates.setdefault(key, []).append(value)
            touched.add(key)
        return touched

    def _take_journal(self, raw: bytes, start: int, *, keys: bool = False) -> set[str]:
        """Take in the whole lines of journal bytes ``raw`` (read from byte ``start``, the
        whole journal when 0: then only if its first line names this snapshot's token).
        With ``keys``, returns the keys they update (else none: they are indexed later)."""
        whole = raw.rfind(b"\n") + 1           # a last line without its newline is torn
        if start == 0:
            first = raw.find(b"\n")
            if first < 0 or _journal_token(raw[:first]) != self.token:
                return set()
            body, begin = raw[first + 1:whole], first + 1
        else:
            body, begin = raw[:whole], 0
        self.offset = start + begin + len(body)
        self._journal += body
        if not keys:
            self._updates = None             # indexed on demand
            return set()
        return self._index_updates(body)

    def _add(self, lines: Sequence[str]) -> None:
        """Take in update lines this process wrote (or is about to fold)."""
        raw = "".join(line + "\n" for line in lines).encode()
        self._journal += raw
        if self._updates is not None:
            self._index_updates(raw)

    # -- writing (under the lock) -----------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock (``OSError`` when it cannot be opened)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, lines: list[str]) -> tuple[set[str] | None, bool]:
        """Append ``lines`` (from :func:`key_line`) to the journal in one write and one fsync;
        hold :meth:`locked`. Returns (the keys other processes updated since this one read
        the store, ``None`` when another process folded it meanwhile: all read is stale;
        whether the journal has grown enough to be folded). Raises :class:`MustFold` when
        there is no snapshot in this layout to append to, ``OSError`` when it cannot write."""
        head = self._read_head()
        if head is None:
            raise MustFold
        others: set[str] | None = set()
        if head != self.token or not self.lined:  # folded by another process since read
            self.load()
            others = None
            if self.token != head or not self.lined:
                raise MustFold
        created = not self.journal.exists()
        fd = os.open(self.journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and (self.offset == 0 or self.offset > size):
                with open(self.journal, "rb") as fh:  # a journal not read yet: whose is it?
                    first = fh.readline(4096)
                if _journal_token(first.rstrip(b"\n")) != self.token or self.offset > size:
                    os.ftruncate(fd, 0)               # of another snapshot: already in it
                    size, self.offset = 0, 0
            tail = b""
            if size > self.offset:
                with open(self.journal, "rb") as fh:
                    fh.seek(self.offset)
                    tail = fh.read(size - self.offset)
                whole = tail.rfind(b"\n") + 1
                if whole < len(tail):                 # a writer was killed mid-line
                    size -= len(tail) - whole
                    os.ftruncate(fd, size)
                    tail = tail[:whole]
                if tail:
                    touched = self._take_journal(tail, self.offset, keys=True)
                    if others is not None:
                        others |= touched
            payload = (("" if size else _journal_head(self.token) + "\n")
                       + "".join(line + "\n" for line in lines)).encode()
            self.needed = len(payload)
            self._write_all(fd, payload, size, created)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.offset = size + len(payload)
        self._add(lines)
        return others, self.offset > max(self.fold_bytes, self.size // 2)

    def _read_head(self) -> str | None:
        """The token the snapshot on disk names now (its first line only)."""
        try:
            with open(self.path, "rb") as fh:
                first = fh.readline(4096)
        except OSError:
            return None
        try:
            head = json.loads(first.decode("utf-8").rstrip("\n") + _TAIL)
        except ValueError:
            return None
        token = head.get("journal") if isinstance(head, dict) else None
        return token if isinstance(token, str) else None

    def _write_all(self, fd: int, payload: bytes, size: int, created: bool) -> None:
        try:
            written = os.write(fd, payload)
            if written != len(payload):
                raise OSError(28, "No space left on device")
        except OSError:
            with contextlib.suppress(OSError):
                if created:
                    os.unlink(self.journal)
                else:
                    os.ftruncate(fd, size)
            raise

    def fold(self, settle: Callable[[str, Any, list[str]], Mapping[str, Any] | None], *,
             extra: Sequence[str] = (), drop: Callable[[str], bool] | None = None,
             reload: bool = True) -> None:
        """Write a new snapshot holding the journal's updates (and ``extra`` ones, lines from
        :func:`key_line`) and remove the journal; hold :meth:`locked`. ``settle(key, entry,
        updates)`` is the entry ``key`` has now (``None``: none), called only for keys with
        updates; ``drop(key)``: leave ``key`` out; ``reload``: read the files first (not when
        what was read is current: read under this lock). ``Corrupt``: the snapshot cannot be read;
        :class:`NotSaved`: the new one cannot be written (the old one stays)."""
        if reload:
            self.load()
        self._add(extra)
        entries, updates = self.entries, self.updates
        token = os.urandom(6).hex()
        lines = []
        for key in sorted(set(entries) | set(updates)):
            if drop is not None and drop(key):
                continue
            value = entries.get(key)
            if key in updates:
                settled = settle(key, value, updates[key])
                if settled is None:
                    continue
                lines.append(key_line(key, settled))
            elif isinstance(value, str):
                lines.append(json.dumps(key) + ": " + value)
            elif value is not None:
                lines.append(key_line(key, value))
        text = (_head(token) + "\n" + ",\n".join(lines) + ("\n" if lines else "") + _TAIL + "\n")
        payload = text.encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise NotSaved(exc, len(payload)) from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal)
        self._clear()
        self._snapshot, self._entries = payload, None
        self._lines = (payload.find(b"\n"), len(payload) - len(_TAIL) - 1)
        self.token, self.lined, self.size = token, True, len(payload)

    def set_aside(self, error: str) -> None:
        """Move an unreadable snapshot aside (``calibration.json.corrupt-<time>``), logged."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        with contextlib.suppress(OSError):
            os.replace(self.path, aside)
        get_logger().warning("calibration_corrupt", path=str(self.path), set_aside=str(aside),
                             error=error)
        self._clear()

    def not_saved(self, exc: OSError, needed: int, file: Path) -> None:
        full = {"needed_bytes": needed, "free_bytes": free_bytes(self.path.parent),
                "hint": "free space there; the old store is kept as it was"
                } if is_disk_full(exc) else {}
        get_logger().warning("calibration_not_saved", path=str(self.path), error=str(exc),
                             **({"file": str(file)} if file != self.path else {}), **full)


class MustFold(Exception):
    """There is no snapshot to append to (or one in the old layout): fold instead."""


class NotSaved(Exception):
    """A fold could not write its snapshot (``exc``; it needed ``needed`` bytes)."""

    def __init__(self, exc: OSError, needed: int) -> None:
        super().__init__(str(exc))
        self.exc, self.needed = exc, needed


def _value_at(raw: bytes, start: int, limit: int) -> str:
    end = raw.find(b"\n", start, limit)
    return raw[start:limit if end < 0 else end].decode("utf-8")


def _parse_whole(text: str) -> dict[str, Any]:
    """A snapshot read as one JSON document (``Corrupt`` if it is not a calibration store)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Corrupt(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise Corrupt("not a calibration file")
    return data


def _journal_head(token: str | None) -> str:
    return json.dumps({"journal": token})


def _journal_token(first: bytes) -> str | None:
    try:
        head = json.loads(first.decode("utf-8"))
    except ValueError:
        return None
    token = head.get("journal") if isinstance(head, dict) else None
    return token if isinstance(token, str) else None
