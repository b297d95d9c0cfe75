"""Canonical JSON and content hashes: the ground the cache and lineage stand on."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; NaN and infinities are refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def digest(value: Any) -> str:
    """sha256 hex digest of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def file_hash(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_manifest(root: Path) -> list[tuple[str, str, int]]:
    """``(relative path, sha256, size)`` for every regular file under ``root``, sorted.

    Symbolic links are recorded by target text so a tree hashes the same wherever it is.
    """
    entries: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                target = os.readlink(full)
                entries.append((rel, "link:" + hashlib.sha256(target.encode()).hexdigest(), 0))
            else:
                entries.append((rel, file_hash(full), full.stat().st_size))
    return entries


def tree_hash(root: Path) -> str:
    """The logical hash of a directory: its manifest's digest (names, contents, not times)."""
    return digest([[rel, sha] for rel, sha, _ in tree_manifest(root)])


def is_finite_number(value: object) -> bool:
    """True for ints and finite floats (bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)
