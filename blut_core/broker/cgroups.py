"""Where this process's cgroups are, read cheaply from /proc and /sys (no subprocess).

Used by the probe (the memory limit blut itself runs under), by the ledger (how much a
booked stage already uses), and, through :mod:`blut_core.broker`, by containment plugins
(where blut's own cgroup is, what a cgroup's files say). Mount points are looked up once per process.
"""

from __future__ import annotations

import functools
import os

UNLIMITED_V1 = 1 << 62  # v1 reports "no limit" as a page-rounded LONG_MAX


def read_text(path: str) -> str | None:
    """The file's text, or ``None`` when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int(path: str) -> int | None:
    """An integer file (``"max"`` → ``None``), or ``None`` when absent or unreadable."""
    text = read_text(path)
    if text is None:
        return None
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: str) -> dict[str, int]:
    """A ``key value`` file (memory.events, memory.oom_control, memory.stat) as a dict."""
    out: dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def cgroups_of(pid: int | str = "self") -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as ``{controller: path}``; the v2 hierarchy is ``""``."""
    out: dict[str, str] = {}
    for line in (read_text(f"/proc/{pid}/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            out[controller] = parts[2]
    return out


@functools.cache
def _mounts() -> tuple[tuple[str, str, str], ...]:
    """(fstype, mount point, super options) of every cgroup mount."""
    found = []
    for line in (read_text("/proc/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((tail[0], fields[4], tail[2]))
    return tuple(found)


@functools.cache
def v1_memory_root() -> str | None:
    """Mount point of the cgroup v1 memory hierarchy, or ``None``."""
    for fstype, point, opts in _mounts():
        if fstype == "cgroup" and "memory" in opts.split(","):
            return point
    return None


@functools.cache
def v2_root() -> str | None:
    """Mount point of the unified (v2) hierarchy, or ``None``."""
    for fstype, point, _ in _mounts():
        if fstype == "cgroup2":
            return point
    return None


@functools.cache
def own_dir(version: int) -> str | None:
    """This process's cgroup directory in the hierarchy of cgroup ``version`` (v1: memory)."""
    mine = cgroups_of()
    root = v1_memory_root() if version == 1 else v2_root()
    rel = mine.get("memory") if version == 1 else mine.get("")
    if root is None or rel is None:
        return None
    return os.path.normpath(os.path.join(root, rel.lstrip("/")))


def own_memory_cgroup() -> tuple[int, str] | None:
    """(version, absolute directory) of the memory cgroup this process is charged to."""
    v1 = own_dir(1)
    if v1 is not None:
        return 1, v1
    v2 = own_dir(2)
    if v2 is not None and "memory" in (read_text(os.path.join(v2, "cgroup.controllers")) or "").split():
        return 2, v2
    return None


def procs(path: str) -> list[int]:
    """Process ids in the cgroup at ``path`` (empty when it is gone)."""
    out = []
    for line in (read_text(os.path.join(path, "cgroup.procs")) or "").split():
        try:
            out.append(int(line))
        except ValueError:
            continue
    return out


def anon_bytes(path: str) -> int | None:
    """Anonymous memory (what cannot be reclaimed) charged to the cgroup at ``path``."""
    stat = read_keyed(os.path.join(path, "memory.stat"))
    if not stat:
        return None
    if "anon" in stat:  # v2
        return stat["anon"]
    return stat.get("total_rss", stat.get("rss"))
