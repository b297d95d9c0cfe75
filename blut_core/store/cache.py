"""The content-addressed cache of stage outputs.

Key = hash(stage name, version, what it runs, canonical params, logical hashes of its
inputs). An entry is ``$BLUT_HOME/cache/<key[:2]>/<key>/`` holding ``out/`` and
``meta.json`` (the output's logical hash and manifest). Entries are written to a temporary
directory and renamed into place, so a reader sees a whole entry or none; a damaged entry is
a miss with a warning, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from blut_core.errors import DiskFull, free_bytes, is_disk_full
from blut_core.host.log import get_logger
from blut_core.model.hashing import digest, tree_manifest


def cache_key(identity: Mapping[str, Any], input_hashes: Mapping[str, str]) -> str:
    """The cache key of a stage given its identity and its inputs' logical hashes."""
    return digest({"stage": dict(identity), "inputs": dict(sorted(input_hashes.items()))})


@attrs.frozen(kw_only=True)
class CacheEntry:
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


class Cache:
    """Lookup, store and materialise content-addressed stage outputs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> CacheEntry | None:
        path = self.entry_path(key)
        meta_path = path / "meta.json"
        if not path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            entry = CacheEntry(key=key, path=path, output_hash=str(meta["output_hash"]),
                               stage=str(meta["stage"]), size=int(meta["size"]),
                               files=int(meta["files"]), created=float(meta["created"]))
            if not entry.out.is_dir():
                raise ValueError("out/ is missing")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            get_logger().warning("cache_entry_corrupt", key=key[:12], path=str(path),
                                 error=str(exc), hint="treated as a miss; it will be rebuilt")
            return None
        with contextlib.suppress(OSError):
            os.utime(meta_path)  # recency for least-recently-used collection
        return entry

    def store(self, key: str, stage: str, out: Path) -> CacheEntry:
        """Copy (hard-link where possible) ``out`` into the cache under ``key``."""
        manifest = tree_manifest(out)
        output_hash = digest([[rel, sha] for rel, sha, _ in manifest])
        final = self.entry_path(key)
        size = sum(s for _, _, s in manifest)
        created = time.time()
        meta = {"key": key, "stage": stage, "output_hash": output_hash, "size": size,
                "files": len(manifest), "created": created, "manifest": manifest}
        entry = CacheEntry(key=key, path=final, output_hash=output_hash, stage=stage,
                           size=size, files=len(manifest), created=created)
        tmp = final.parent / f".{key}.{os.getpid()}.tmp"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            link_tree(out, tmp / "out")
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-stored entry stays behind
            if not is_disk_full(exc):
                raise
            same_disk = _device(out) == _device(self.root)
            get_logger().warning("cache_not_stored", stage=stage, path=str(final),
                                 needed_bytes=len(json.dumps(meta)) + (0 if same_disk else size),
                                 free_bytes=free_bytes(self.root), error=str(exc),
                                 hint="the output is kept in the run directory; free space "
                                      "on the cache's disk to cache it next time")
            return entry  # the run goes on; the next run misses and runs the stage again
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # another process stored the same key first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
        return entry

    def materialize(self, entry: CacheEntry, dest: Path) -> None:
        """Put a cached output at ``dest`` (hard links; a copy across file systems)."""
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            link_tree(entry.out, tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(exc):
                raise DiskFull(dest, needed=entry.size) from None
            raise
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)


def _device(path: Path) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def link_tree(src: Path, dest: Path) -> None:
    """Recreate ``src`` at ``dest`` with hard links, falling back to copies."""
    def _link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, symlinks=True, copy_function=_link)
