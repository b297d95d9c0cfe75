"""The content-addressed cache of stage outputs.

Key = BLAKE3 of (stage name, version, what it runs, canonical params, logical hashes of its
inputs). An entry is ``$BLUT_HOME/cache/<key[:2]>/<key>/`` holding ``out/`` and
``meta.json`` (the output's logical hash, its manifest and each file's size and mtime); an
empty output's entry is ``meta.json`` alone.
Entries are written to a temporary directory and renamed into place, so a reader sees a whole
entry or none; a damaged entry is a miss with a warning, never a crash, and an entry written
under another hash algorithm (sha256, before BLAKE3) is a plain miss.

Outputs are stored by hard link, not copied: the run directory's ``out/`` and the entry share
their files. So that neither can be changed through the other, a stored file is made
read-only (for the run directory's link too), and a lookup checks every file's size and
mtime against ``meta.json``: an entry whose file was written in place anyway (root ignores
the read-only bit) is dropped with a warning, and stored afresh once its stage has run.
A file the output shares with something outside blut (a hard link the stage made to a
writable file) is copied into the entry instead, and left as it is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from blake3 import blake3

from blut_core.errors import DiskFull, free_bytes, is_disk_full
from blut_core.host.log import get_logger
from blut_core.model.hashing import (
    HASH,
    canonical_json,
    hash_fd,
    link_hash,
    manifest_hash,
    tree_entries,
)
from blut_core.model.reprs import record_repr

_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def cache_key(identity: Mapping[str, Any], input_hashes: Mapping[str, str]) -> str:
    """The cache key of a stage given its identity and its inputs' logical hashes (the same
    digest as :func:`keyed` of its :func:`identity_text`, in one encoding)."""
    inputs = input_hashes if type(input_hashes) is dict else dict(input_hashes)
    stage = identity if type(identity) is dict else dict(identity)
    return blake3(canonical_json({"inputs": inputs, "stage": stage}).encode()).hexdigest()


def identity_text(identity: Mapping[str, Any]) -> str:
    """A stage identity's canonical JSON: what :func:`keyed` takes, computed once a stage."""
    return canonical_json(identity if type(identity) is dict else dict(identity))


def keyed(identity: str, input_hashes: Mapping[str, str]) -> str:
    """The cache key from an :func:`identity_text` and the inputs' logical hashes: the
    BLAKE3 digest of the canonical JSON of ``{"inputs": ..., "stage": ...}``, built around
    the identity's text instead of encoding it again."""
    inputs = canonical_json(input_hashes if type(input_hashes) is dict else dict(input_hashes))
    return blake3(f'{{"inputs":{inputs},"stage":{identity}}}'.encode()).hexdigest()


@attrs.frozen(kw_only=True)
class CacheEntry:
    __repr__ = record_repr  # attrs' text, not compiled per class

    key: str
    path: Path
    output_hash: str
    stage: str
    size: int
    files: int
    created: float

    @property
    def out(self) -> Path:
        return self.path / "out"


class _Changed(ValueError):
    """A stored file is not what was stored."""


class Cache:
    """Lookup, store and materialise content-addressed stage outputs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[str, Path] = {}  # a run looks a key up, then stores it
        self._folders: set[str] = set()  # key-prefix folders known to exist

    def entry_path(self, key: str) -> Path:
        found = self._paths.get(key)
        if found is None:
            if len(self._paths) > 4096:
                self._paths.clear()
            found = self._paths[key] = Path(os.path.join(self.root, key[:2], key))
        return found

    def lookup(self, key: str) -> CacheEntry | None:
        path = self.entry_path(key)
        meta_path = os.path.join(path, "meta.json")
        try:
            try:
                with open(meta_path, "rb") as fh:
                    meta = json.loads(fh.read())
            except FileNotFoundError:
                if not path.exists():
                    return None
                raise
            if not isinstance(meta, dict):
                raise ValueError("meta.json is not an object")
            if meta.get("hash") != HASH:  # written by an older blut (sha256): not ours to read
                get_logger().debug("cache_entry_other_hash", key=key[:12], hash=meta.get("hash"))
                return None
            entry = CacheEntry(key=key, path=path, output_hash=str(meta["output_hash"]),
                               stage=str(meta["stage"]), size=int(meta["size"]),
                               files=int(meta["files"]), created=float(meta["created"]))
            if meta.get("empty") is not True and not os.path.isdir(entry.out):
                raise ValueError("out/ is missing")
            _check_stamps(entry.out, meta["stamps"])
        except _Changed as exc:
            get_logger().warning("cache_entry_changed", key=key[:12], path=str(path),
                                 error=str(exc), hint="a stored output was written in place; "
                                 "the entry is dropped, the stage runs and is stored again")
            _drop(path)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            get_logger().warning("cache_entry_corrupt", key=key[:12], path=str(path),
                                 error=str(exc), hint="treated as a miss; it will be rebuilt")
            return None
        with contextlib.suppress(OSError):
            os.utime(meta_path)  # recency for least-recently-used collection
        return entry

    def store(self, key: str, stage: str, out: Path) -> CacheEntry:
        """Hard-link ``out`` into the cache under ``key`` (copies across file systems).

        An empty output (not even a directory in it) is an entry of ``meta.json`` alone.
        """
        return self.write(self.prepare(key, stage, out))

    def prepare(self, key: str, stage: str, out: Path) -> PendingStore:
        """The first half of :meth:`store`: hash ``out`` and make its files read-only.

        Nothing is written to the cache yet, but the entry (its output hash) is known, so a
        run can go on while :meth:`write` (the second half) puts it in place.
        """
        entries = tree_entries(out)
        manifest, stamps, todo = _hash_tree(entries)
        return PendingStore(key=key, stage=stage, out=out, final=self.entry_path(key),
                            created=time.time(), manifest=manifest, stamps=stamps, todo=todo)

    def write(self, pending: PendingStore) -> CacheEntry:
        """The second half of :meth:`store`: link the hashed output into a temporary entry
        and rename it into place. On a full disk the entry is not stored, with a warning."""
        key, final = pending.key, pending.final
        folder = os.path.join(self.root, key[:2])
        tmp = os.path.join(folder, f".{key}.{os.getpid()}.tmp")
        stamps = dict(pending.stamps)
        try:
            if folder not in self._folders:  # one makedirs per folder a run, not per entry
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            _fresh_dir(tmp)
            if pending.todo:
                os.mkdir(os.path.join(tmp, "out"))
                _link_tree(pending.todo, os.path.join(tmp, "out"), stamps)
            meta = _meta(key, pending.stage, pending.manifest, stamps, pending.created,
                         empty=not pending.todo)
            fd = os.open(os.path.join(tmp, "meta.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o644)
            try:
                os.write(fd, json.dumps(meta).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-stored entry stays behind
            if not is_disk_full(exc):
                raise
            meta = _meta(key, pending.stage, pending.manifest, {}, pending.created)
            size = int(meta["size"])
            same_disk = _device(pending.out) == _device(self.root)
            get_logger().warning("cache_not_stored", stage=pending.stage, path=str(final),
                                 needed_bytes=len(json.dumps(meta)) + (0 if same_disk else size),
                                 free_bytes=free_bytes(self.root), error=str(exc),
                                 hint="the output is kept in the run directory; free space "
                                      "on the cache's disk to cache it next time")
            return _entry(key, final, meta)  # the run goes on; the next run misses and reruns
        try:
            os.rename(tmp, final)
        except OSError:  # an entry is there (stale, damaged, or another run's just now)
            shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # another process stored the same key first: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
        return _entry(key, final, meta)

    def materialize(self, entry: CacheEntry, dest: Path) -> None:
        """Put a cached output at ``dest`` (hard links; a copy across file systems)."""
        if entry.files == 0 and not os.path.isdir(entry.out):  # an empty output
            try:
                _fresh_dir(dest)
            except OSError as exc:
                if is_disk_full(exc):
                    raise DiskFull(dest, needed=0) from None
                raise
            return
        tmp = os.path.join(dest.parent, f".{dest.name}.{os.getpid()}.tmp")
        try:
            _fresh_dir(tmp)
            link_tree(entry.out, tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(exc):
                raise DiskFull(dest, needed=entry.size) from None
            raise
        try:
            os.rename(tmp, dest)
        except OSError:
            shutil.rmtree(dest)
            os.rename(tmp, dest)


def _meta(key: str, stage: str, manifest: list[tuple[str, str, int]],
          stamps: dict[str, list[int]], created: float, *, empty: bool = False) -> dict[str, Any]:
    meta = {"key": key, "stage": stage, "hash": HASH, "output_hash": manifest_hash(manifest),
            "size": sum(s for _, _, s in manifest), "files": len(manifest), "created": created,
            "manifest": manifest, "stamps": stamps}
    if empty:
        meta["empty"] = True
    return meta


def _entry(key: str, path: Path, meta: dict[str, Any]) -> CacheEntry:
    return CacheEntry(key=key, path=path, output_hash=meta["output_hash"], stage=meta["stage"],
                      size=meta["size"], files=meta["files"], created=meta["created"])


def _fresh_dir(path: str | Path) -> None:
    """Make ``path`` an empty directory (its parents as needed, a leftover replaced)."""
    try:
        os.mkdir(path)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkdir(path)
    except FileExistsError:
        shutil.rmtree(path)
        os.mkdir(path)


@attrs.frozen(kw_only=True)
class PendingStore:
    """A hashed output on its way into the cache (:meth:`Cache.prepare`, :meth:`Cache.write`).

    ``todo`` is what the entry's ``out/`` holds, in tree order: ``(kind, rel, source)`` with
    kind ``dir``, ``link`` (source: the link's text), ``file`` (linked) or ``copy`` (a file
    shared with something outside blut: copied, its stamp taken from the copy).
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    key: str
    stage: str
    out: Path
    final: Path
    created: float
    manifest: list[tuple[str, str, int]]
    stamps: dict[str, list[int]]
    todo: list[tuple[str, str, str]]

    @property
    def output_hash(self) -> str:
        """The logical hash of the output (the entry's, once written)."""
        return manifest_hash(self.manifest)

    @property
    def copies(self) -> bool:
        """Whether a file is shared with something outside blut (copied, not linked)."""
        return any(kind == "copy" for kind, _, _ in self.todo)


def _hash_tree(entries: list[tuple[str, os.DirEntry[str]]],
               ) -> tuple[list[tuple[str, str, int]], dict[str, list[int]], list[tuple[str, str, str]]]:
    """Hash a tree's ``entries``: its manifest, the linked files' stamps, and what to link.

    Each regular file is made read-only as it is hashed; one that is also linked from outside
    (more than one link and still writable) is to be copied instead and is left alone.
    """
    manifest: list[tuple[str, str, int]] = []
    stamps: dict[str, list[int]] = {}
    todo: list[tuple[str, str, str]] = []
    for rel, e in entries:
        if e.is_symlink():
            text = os.readlink(e.path)
            todo.append(("link", rel, text))
            manifest.append((rel, link_hash(text), 0))
            continue
        if e.is_dir(follow_symlinks=False):
            todo.append(("dir", rel, ""))
            continue
        fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            sha = hash_fd(fd, st.st_size)
            shared = st.st_nlink > 1 and st.st_mode & _WRITE
            if not shared and st.st_mode & _WRITE:
                with contextlib.suppress(OSError):  # not the file's owner: it stays writable
                    os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~_WRITE)
        finally:
            os.close(fd)
        todo.append(("copy" if shared else "file", rel, e.path))
        manifest.append((rel, sha, st.st_size))
        if not shared:
            stamps[rel] = [st.st_size, st.st_mtime_ns]
    return manifest, stamps, todo


def _link_tree(todo: list[tuple[str, str, str]], dest: str, stamps: dict[str, list[int]]) -> None:
    """Make ``todo`` (from :func:`_hash_tree`) in the empty ``dest``; a copy's stamp is added."""
    for kind, rel, source in todo:
        target = os.path.join(dest, rel)
        if kind == "link":
            os.symlink(source, target)
        elif kind == "dir":
            os.mkdir(target)
        elif kind == "file":
            _link_or_copy(source, target)
        else:
            shutil.copy2(source, target)
            os.chmod(target, stat.S_IMODE(os.stat(target).st_mode) & ~_WRITE)
            st = os.stat(target)
            stamps[rel] = [st.st_size, st.st_mtime_ns]


def _check_stamps(out: Path, stamps: Any) -> None:
    if not isinstance(stamps, dict):
        raise ValueError("meta.json has no file stamps")
    for rel, (size, mtime_ns) in stamps.items():
        try:
            st = os.lstat(os.path.join(out, rel))
        except FileNotFoundError:
            raise _Changed(f"{rel} is missing") from None
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            raise _Changed(f"{rel} was changed after it was stored")


def _drop(path: Path) -> None:
    """Take an entry out of the cache at once (a rename), then remove it."""
    gone = path.with_name(f".{path.name}.{os.getpid()}.gone")
    try:
        os.rename(path, gone)
    except OSError:
        return  # another process took it first
    shutil.rmtree(gone, ignore_errors=True)


def _device(path: Path) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        shutil.copy2(src, dest)


def link_tree(src: Path, dest: str | Path) -> None:
    """Recreate ``src`` in the empty directory ``dest`` with hard links, falling back to copies."""
    for rel, e in tree_entries(src):
        target = os.path.join(dest, rel)
        if e.is_symlink():
            os.symlink(os.readlink(e.path), target)
        elif e.is_dir(follow_symlinks=False):
            os.mkdir(target)
        else:
            _link_or_copy(e.path, target)
