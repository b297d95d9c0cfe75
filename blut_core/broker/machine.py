"""The probe: how much memory this box has, and has free, right now.

A few reads of ``/proc/meminfo`` and of the memory cgroup blut itself runs in (and its
ancestors, v1 or v2): in a container the cgroup's limit is the real box. No subprocess.
"""

from __future__ import annotations

import functools
import os
import time

import attrs

from blut_core.broker import cgroups
from blut_core.model.reprs import record_repr

_MEMINFO_KEYS = {"MemTotal", "MemAvailable", "SwapTotal", "SwapFree"}


@attrs.frozen(kw_only=True)
class Probe:
    """One snapshot of this machine's memory, in bytes.

    ``box`` is what blut can ever use (the smaller of RAM and its cgroup's limit);
    ``available`` is what it can use now (MemAvailable, and the cgroup's room).
    ``mem_total == 0`` means the probe could not read ``/proc/meminfo``.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    mem_total: int
    mem_available: int
    swap_total: int = 0
    swap_free: int = 0
    cpus: int = 1
    cgroup_version: int | None = None
    cgroup_path: str | None = None
    cgroup_limit: int | None = None
    cgroup_available: int | None = None
    taken: float = 0.0

    @property
    def box(self) -> int:
        """The most memory blut's stages can ever get here."""
        if self.cgroup_limit is not None and self.mem_total:
            return min(self.mem_total, self.cgroup_limit)
        return self.cgroup_limit if self.cgroup_limit is not None else self.mem_total

    @property
    def available(self) -> int:
        """What can be given out now, before bookings and the floor are taken off."""
        if self.cgroup_available is not None:
            return max(0, min(self.mem_available, self.cgroup_available))
        return self.mem_available

    @property
    def known(self) -> bool:
        """Whether the probe could read the machine at all."""
        return self.box > 0

    def to_json(self) -> dict[str, object]:
        """The shape of ``blut broker probe --json``."""
        return {
            "box_bytes": self.box, "available_bytes": self.available,
            "mem_total_bytes": self.mem_total, "mem_available_bytes": self.mem_available,
            "swap_total_bytes": self.swap_total, "swap_free_bytes": self.swap_free,
            "cpus": self.cpus, "cgroup": {
                "version": self.cgroup_version, "path": self.cgroup_path,
                "limit_bytes": self.cgroup_limit, "available_bytes": self.cgroup_available,
            },
            "taken": self.taken,
        }


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (cgroups.read_text("/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        if key in _MEMINFO_KEYS:
            parts = rest.split()
            try:
                out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
            except (IndexError, ValueError):
                continue
    return out


@functools.cache
def _limit_files() -> tuple[int | None, str | None, tuple[tuple[str, str], ...]]:
    """(version, own path, ((limit file, usage file) for self and each ancestor))."""
    own = cgroups.own_memory_cgroup()
    if own is None:
        return None, None, ()
    version, path = own
    root = cgroups.v1_memory_root() if version == 1 else cgroups.v2_root()
    limit, usage = ("memory.limit_in_bytes", "memory.usage_in_bytes") if version == 1 \
        else ("memory.max", "memory.current")
    levels = []
    here = path
    while root is not None and here.startswith(root):
        levels.append((os.path.join(here, limit), os.path.join(here, usage)))
        if here.rstrip("/") == root.rstrip("/"):
            break
        here = os.path.dirname(here.rstrip("/"))
    return version, path, tuple(levels)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def probe() -> Probe:
    """Read the machine now. Never raises: a value it cannot read is 0 or ``None``."""
    info = _meminfo()
    version, path, levels = _limit_files()
    limit: int | None = None
    room: int | None = None
    for limit_file, usage_file in levels:
        value = cgroups.read_int(limit_file)
        if value is None or value >= cgroups.UNLIMITED_V1:
            continue
        used = cgroups.read_int(usage_file) or 0
        limit = value if limit is None else min(limit, value)
        free = max(0, value - used)
        room = free if room is None else min(room, free)
    return Probe(
        mem_total=info.get("MemTotal", 0), mem_available=info.get("MemAvailable", 0),
        swap_total=info.get("SwapTotal", 0), swap_free=info.get("SwapFree", 0),
        cpus=_cpus(), cgroup_version=version, cgroup_path=path, cgroup_limit=limit,
        cgroup_available=room, taken=time.time(),
    )
