"""The installed ``blut.plugins`` and ``blut.cookbooks`` entry points, scanned once and cached.

Scanning entry points (``importlib.metadata.entry_points()``) imports importlib.metadata,
email and zipfile and reads every installed distribution's metadata: ~30 ms of every blut
command. The result is kept in a small JSON file per interpreter and ``sys.path``, under
blut's home (``$BLUT_HOME/entry-points/``, written only when the home exists: a ``--help``
on a fresh machine makes nothing), valid
while nothing that could change it did: the modification time of every ``sys.path``
directory (installing or removing a distribution, or a ``.pth`` file, changes it) and of
the ``entry_points.txt`` and ``METADATA`` of each distribution that provides blut entry
points (a rewrite in place). A stale, unreadable or unwritable cache is rebuilt or skipped,
never an error; ``BLUT_NO_ENTRY_POINT_CACHE=1`` skips it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

GROUPS = ("blut.plugins", "blut.cookbooks")
VERSION = 1
NO_CACHE_ENV = "BLUT_NO_ENTRY_POINT_CACHE"
#: Caches kept in the cache directory (the most recently written).
KEEP = 16


class CachedEntryPoint(NamedTuple):
    """An entry point as the cache keeps it: what ``importlib.metadata.EntryPoint`` offers
    blut (``name``, ``value``, ``group``, ``load()``) and its distribution's name and version."""

    name: str
    value: str
    group: str
    distribution: str
    version: str

    def load(self) -> Any:
        """Import the module the value names and walk its ``:attr.path``, as
        ``importlib.metadata.EntryPoint.load`` does."""
        text = self.value.split("[", 1)[0].strip()
        module_name, _, attrs = text.partition(":")
        found: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attrs.strip().split(".")):
            found = getattr(found, part)
        return found


def _mtime(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _path_key() -> list[Any]:
    return [[entry, _mtime(entry or ".")] for entry in sys.path]


def _files_key(files: Iterable[str]) -> list[Any]:
    return [[f, _mtime(f)] for f in sorted(files)]


def cache_file(folder: Path) -> Path:
    """Where this interpreter's cache for the current ``sys.path`` lives in ``folder``."""
    # a name, not a check: the file records the sys.path it is valid for (zlib, not hashlib:
    # OpenSSL is not loaded for this)
    tag = f"{zlib.crc32(json.dumps([sys.executable, sys.path]).encode()):08x}"
    return Path(folder) / f"entry-points-{tag}.json"


def scan() -> tuple[list[CachedEntryPoint], list[str]]:
    """Every blut entry point installed, and the metadata files that declare them.

    Read from the ``*.dist-info``/``*.egg-info`` folders on ``sys.path`` directly, as
    importlib.metadata finds them (the same distributions, first on the path wins, in its
    order), without importing it (~25 ms: email, zipfile, csv); anything it reads that this
    does not (a zip or an egg on the path, another finder of distributions, metadata this
    does not parse) is left to it.
    """
    quick = _scan_folders()
    return quick if quick is not None else scan_metadata()


_INFO = (".dist-info", ".egg-info")


def _scan_folders() -> tuple[list[CachedEntryPoint], list[str]] | None:
    import importlib.machinery
    import re

    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and \
                getattr(finder, "find_distributions", None) is not None:
            return None
    by_group: dict[str, list[CachedEntryPoint]] = {g: [] for g in GROUPS}
    files: set[str] = set()
    seen: set[str] = set()
    for root in sys.path:
        if root.lower().endswith(".egg"):
            return None
        try:
            children = os.listdir(root or ".")
        except OSError:
            if os.path.isfile(root):  # a zip importlib.metadata reads
                return None
            continue
        for child in children:
            low = child.lower()
            if not low.endswith(_INFO):
                continue
            stem, ext = os.path.splitext(child)
            if ext not in _INFO:  # importlib names such a distribution from its METADATA
                return None
            name = re.sub(r"[-_.]+", "-", stem.partition("-")[0]).lower().replace("-", "_")
            if name in seen:
                continue
            seen.add(name)
            folder = os.path.join(root, child)
            text = _read(folder, "entry_points.txt")
            if not text or "[blut." not in text:
                continue
            eps = _sections(text)
            if eps is None:
                return None
            mine = [ep for ep in eps if ep[0] in by_group]
            if not mine:
                continue
            meta = _read(folder, "METADATA") or _read(folder, "PKG-INFO")
            named = _name_version(meta or "")
            if named is None:
                return None
            where = Path(root, child)
            files.update(str(where / f) for f in ("entry_points.txt", "METADATA"))
            for group, ep_name, value in mine:
                by_group[group].append(CachedEntryPoint(ep_name, value, group, *named))
    return [ep for g in GROUPS for ep in by_group[g]], sorted(files)


def _read(folder: str, name: str) -> str | None:
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


def _sections(text: str) -> list[tuple[str, str, str]] | None:
    """``entry_points.txt`` as importlib.metadata reads it: (group, name, value)."""
    out: list[tuple[str, str, str]] = []
    group: str | None = None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
            continue
        if group is None:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            return None
        out.append((group, name.strip(), value.strip()))
    return out


def _name_version(meta: str) -> tuple[str, str] | None:
    """``Name`` and ``Version`` of a METADATA header (``?`` when absent), or ``None`` when
    they are written in a way only the email parser reads."""
    found: dict[str, str] = {}
    last = ""
    for line in meta.splitlines():
        if not line:
            break
        if line[0] in " \t":
            if last in ("name", "version"):
                return None
            continue
        key, sep, value = line.partition(":")
        last = key.lower() if sep else ""
        if last in ("name", "version") and last not in found:
            found[last] = value.lstrip(" \t")
    return found.get("name") or "?", found.get("version") or "?"


def scan_metadata() -> tuple[list[CachedEntryPoint], list[str]]:
    """:func:`scan` through importlib.metadata."""
    from importlib import metadata as md

    from blut_core.host.manager import dist_of

    found: list[CachedEntryPoint] = []
    files: set[str] = set()
    installed = md.entry_points()
    for group in GROUPS:
        for ep in installed.select(group=group):
            name, version = dist_of(ep)
            found.append(CachedEntryPoint(ep.name, ep.value, group, name, version))
            where = getattr(getattr(ep, "dist", None), "_path", None)
            if where is not None:
                files.update(str(Path(where) / f) for f in ("entry_points.txt", "METADATA"))
    return found, sorted(files)


def installed(folder: Path | None = None) -> list[CachedEntryPoint]:
    """The blut entry points installed, from the cache in ``folder`` (``$BLUT_HOME/entry-points``)
    when it is current; ``None``: scan."""
    if folder is None or os.environ.get(NO_CACHE_ENV) == "1":
        return scan()[0]
    path = cache_file(folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if (data.get("version") == VERSION and data.get("path") == _path_key()
                and data.get("files") == _files_key(f for f, _ in data["files"])):
            return [CachedEntryPoint(*ep) for ep in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    key = _path_key()  # taken before the scan: a change during it makes the next start rescan
    found, files = scan()
    data = {"version": VERSION, "path": key, "files": _files_key(files),
            "entry_points": [list(ep) for ep in found]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)  # inside the home, never the home itself
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only home: scan every time
        with contextlib.suppress(OSError):
            tmp.unlink()
        return found
    _prune(path.parent)
    return found


def _prune(folder: Path, keep: int = KEEP) -> None:
    """Remove all but the ``keep`` most recently written caches (one per interpreter and
    ``sys.path``: test runs and virtualenvs come and go)."""
    with contextlib.suppress(OSError):
        caches = sorted(folder.glob("entry-points-*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in caches[:-keep]:
            old.unlink(missing_ok=True)


def select(eps: Iterable[CachedEntryPoint], group: str) -> list[CachedEntryPoint]:
    return [ep for ep in eps if ep.group == group]
