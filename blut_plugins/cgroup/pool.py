"""Empty stage cgroups kept for the run's next attempts instead of removed and made again.

Making a memory cgroup and removing it cost the kernel far more than a rename and two
writes, and every stage of a run pays both. So when an attempt ends, its cage is *recycled*
(:meth:`~blut_plugins.cgroup.cage.CgroupCage.recycle`): once ``cgroup.procs`` is empty
(killed and waited for otherwise) and the memory still charged to it is small (at most
:data:`MAX_LEFT`), its peak and fail counters are reset
(``memory.max_usage_in_bytes``, ``memory.failcnt``), the OOM-kill count it has reached is
kept as the next attempt's baseline (the kernel cannot reset it: an attempt's OOM kills are
the count's growth during that attempt), and it is renamed ``blut-<maker>-pool-<hex>`` and
kept here. The next cage of the run takes it, renames it after its own attempt and writes
its cap only if that differs. Every attempt still runs alone in a cgroup named after it,
with its own cap, peak and OOM evidence; a finished attempt's cgroup name is gone at once,
as if it had been removed.

What is still charged to an emptied cgroup is not its stage's: page cache the stage left,
and pages a reused fork-server worker touched while it ran the stage there and still holds
(the kernel leaves them charged where they were first touched). The next attempt's cap
would count it, and its peak too, but for page cache its cgroup still holds at its end. So a
cgroup is recycled only with at most :data:`MAX_CACHE` of page cache and no more else than
the kernel's own per-CPU charge batches (:data:`MAX_LEFT`: 256 KiB a CPU, 1 MiB at most),
the noise of any cgroup's readings; others are removed, as before. A recycled cgroup's
peak may so read up to that much above what a fresh one would (never below).

Only cgroup v1 can do this (v2 cannot rename a cgroup, nor reset ``memory.peak`` before
Linux 6.12), and only with ``BLUT_CGROUP_POOL=1``: it is off by default, because those
few hundred KiB a recycled cgroup's peak may read high are enough to lift a stage declared
to the MiB above its declaration (the signal cookbook's tiny sweep) and to calibrate a
little high, for a saving of about 0.1 ms a stage. The pool keeps at most :data:`SIZE`
cgroups; :meth:`CagePool.close` (the launcher's, at the end of a run) removes them all, and
a pool whose driver was killed is removed by the next run's sweep like any cage of a dead
maker (:func:`~blut_plugins.cgroup.cage.sweep_stale`: the names start with the maker).
"""

from __future__ import annotations

import os
import time

import attrs

from blut_core.model import record_repr

SIZE = 8  # empty cgroups kept at most (a run needs about as many as it runs stages at once)
#: bytes an ended attempt may leave charged to its cgroup besides page cache and be recycled:
#: the kernel charges memory in batches of 64 pages a CPU, so a cgroup's usage is that noisy
#: (a fresh cgroup's readings too); at most 1 MiB however many CPUs
MAX_LEFT = min(1 << 20, (256 << 10) * max(1, os.cpu_count() or 1))
MAX_CACHE = 4 << 20  # bytes of page cache it may leave


@attrs.define
class Idle:
    """A pooled empty cgroup: its directory, the cap it holds, its OOM-kill count so far."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    path: str
    cap: int | None
    oom_base: int


class CagePool:
    """The empty cgroups of one run's containment (see the module docstring)."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._idle: list[Idle] = []
        self.closed = False

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> Idle | None:
        """The most recently recycled empty cgroup, or ``None`` (make a new one)."""
        return self._idle.pop() if self._idle else None

    def put(self, idle: Idle) -> bool:
        """Keep ``idle`` for a later attempt; ``False`` when full or closed (remove it)."""
        if self.closed or len(self._idle) >= self.size:
            return False
        self._idle.append(idle)
        return True

    def close(self) -> None:
        """Remove every pooled cgroup (idempotent); later recycled cages are removed."""
        self.closed = True
        idle, self._idle = self._idle, []
        for entry in idle:
            remove_empty(entry.path)


def remove_empty(path: str, timeout: float = 2.0) -> bool:
    """``rmdir`` an empty cgroup, retrying while the kernel finishes its last exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
