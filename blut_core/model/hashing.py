"""Canonical JSON and content hashes: the ground the cache and lineage stand on.

Content hashes — of a file, of a directory tree, a cache key — are BLAKE3 (``HASH``), 64 hex
digits. :func:`digest` stays sha256: it names params in calibration keys and lineage
fingerprints, identifiers that must mean the same before and after the switch.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from blake3 import blake3

HASH = "blake3"
#: Files up to this size are read in one call; larger ones through a buffer of this size.
_CHUNK = 1 << 20


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False, default=_default)


def _c_encoder() -> Any:
    """The C encoder ``_ENCODER`` would build on every call, built once (None if unavailable)."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:  # (markers, default, encoder, indent, key sep, item sep, sort_keys, skipkeys, allow_nan)
        enc = make(None, _default, encoder.encode_basestring, None, ":", ",", True, False, False)
        if "".join(enc({"b": [1.5, "é"], "a": None}, 0)) != '{"a":null,"b":[1.5,"é"]}':
            return None
    except (TypeError, ValueError):
        return None
    return enc


_C_ENCODE = _c_encoder()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; NaN and infinities are refused."""
    if _C_ENCODE is None or isinstance(value, str):
        return _ENCODER.encode(value)
    try:
        return "".join(_C_ENCODE(value, 0))
    except RecursionError:  # the prebuilt encoder does not look for cycles: a cycle ends here
        raise ValueError("a circular reference (or nesting too deep) is not JSON") from None


def digest(value: Any) -> str:
    """sha256 hex digest of ``value``'s canonical JSON (a stable identifier, not a content hash)."""
    import hashlib  # OpenSSL's ~3 ms, paid only by a run whose stages have params

    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def content_digest(value: Any) -> str:
    """BLAKE3 hex digest of ``value``'s canonical JSON."""
    return blake3(canonical_json(value).encode()).hexdigest()


def hash_fd(fd: int, size: int) -> str:
    """BLAKE3 hex digest of what is left to read from the open file ``fd`` (about ``size`` bytes)."""
    if size <= _CHUNK:
        data = os.read(fd, size + 1) if size else b""
        h = blake3(data)
        if len(data) != size:  # a short read, or a file that grew since its stat: read on
            while chunk := os.read(fd, _CHUNK):
                h.update(chunk)
        return h.hexdigest()
    h = blake3()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def file_hash(path: Path) -> str:
    """BLAKE3 hex digest of a file's bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def link_hash(target: str) -> str:
    """How a symbolic link appears in a manifest: by its target text, not what it points at."""
    return "link:" + blake3(target.encode()).hexdigest()


def tree_entries(root: Path) -> list[tuple[str, os.DirEntry[str]]]:
    """``(relative path, entry)`` for every directory, regular file and symbolic link under
    ``root``, sorted by path (so a directory comes before what is in it).

    Symbolic links are not followed; other kinds of file (fifos, sockets, devices) are left out.
    """
    found: list[tuple[str, os.DirEntry[str]]] = []
    todo = [("", os.fspath(root))]
    while todo:
        prefix, path = todo.pop()
        with os.scandir(path) as it:
            for e in it:
                rel = prefix + e.name
                if e.is_symlink():
                    found.append((rel, e))
                elif e.is_dir(follow_symlinks=False):
                    found.append((rel, e))
                    todo.append((rel + "/", e.path))
                elif e.is_file(follow_symlinks=False):
                    found.append((rel, e))
    found.sort(key=lambda item: item[0])
    return found


def tree_manifest(root: Path) -> list[tuple[str, str, int]]:
    """``(relative path, BLAKE3, size)`` for every regular file and link under ``root``, sorted.

    Symbolic links (to files or to directories) are recorded by target text, so a tree
    hashes the same wherever it is; directories themselves are not part of it.
    """
    entries: list[tuple[str, str, int]] = []
    for rel, e in tree_entries(root):
        if e.is_symlink():
            entries.append((rel, link_hash(os.readlink(e.path)), 0))
        elif not e.is_dir(follow_symlinks=False):
            fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    entries.append((rel, hash_fd(fd, st.st_size), st.st_size))
            finally:
                os.close(fd)
    return entries


def manifest_hash(manifest: list[tuple[str, str, int]]) -> str:
    """The logical hash of a tree from its manifest: names and contents, not sizes or times."""
    if not manifest:
        return EMPTY_TREE
    return content_digest([[rel, sha] for rel, sha, _ in manifest])


def tree_hash(root: Path) -> str:
    """The logical hash of a directory: its manifest's digest (names, contents, not times)."""
    return manifest_hash(tree_manifest(root))


EMPTY_TREE = content_digest([])


def is_finite_number(value: object) -> bool:
    """True for ints and finite floats (bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)
