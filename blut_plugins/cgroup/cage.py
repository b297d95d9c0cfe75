"""A stage's own memory cgroup (v1 or v2), the shared machinery of the cgroup backends.

A cage is a child cgroup created under blut's own memory cgroup (or ``BLUT_CGROUP_PARENT``)
for one attempt: the cap is written before the stage starts, the stage joins it before it
``exec``s the stage's command (so it never runs uncapped, and everything it forks is
charged and capped with it), the kernel's peak and OOM counter are read after it exits, every process
left in it is killed, and the directory is removed, or, on v1, emptied and kept for the run's
next attempt (:meth:`CgroupCage.recycle`, :mod:`blut_plugins.cgroup.pool`). The peak a cage
reports is what the stage needed, without the page cache the kernel could reclaim
(:mod:`blut_plugins.cgroup.usage`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from blut_core import Cage, LauncherError
from blut_core.broker import process_start
from blut_core.host import get_logger
from blut_core.model import record_repr
from blut_plugins.cgroup import files, usage
from blut_plugins.cgroup.pool import MAX_CACHE, MAX_LEFT, CagePool, Idle, remove_empty

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SHELL = "/bin/sh"


@attrs.frozen(kw_only=True)
class CgroupLayout:
    """The control files of one cgroup version."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    version: int
    limit: str
    swap_limit: str
    peak: str
    events: str
    kill: str | None
    oom_group: str | None
    usage: str
    #: the fail counter reset with the peak when a cage is recycled (``None``: not recyclable)
    failcnt: str | None

    def swap_value(self, cap: int | None) -> str:
        # v1 limits memory+swap together (= cap: no swap); v2 limits swap alone (0)
        if self.version == 1:
            return "-1" if cap is None else str(cap)
        return "0"

    def limit_value(self, cap: int | None) -> str:
        if cap is not None:
            return str(cap)
        return "-1" if self.version == 1 else "max"


V1 = CgroupLayout(version=1, limit="memory.limit_in_bytes", swap_limit="memory.memsw.limit_in_bytes",
                  peak="memory.max_usage_in_bytes", events="memory.oom_control", kill=None,
                  oom_group=None, usage="memory.usage_in_bytes", failcnt="memory.failcnt")
V2 = CgroupLayout(version=2, limit="memory.max", swap_limit="memory.swap.max",
                  peak="memory.peak", events="memory.events", kill="cgroup.kill",
                  oom_group="memory.oom.group", usage="memory.current", failcnt=None)


def cgroup_base(version: int) -> str | None:
    """The directory under which cages are created: ``BLUT_CGROUP_PARENT`` or blut's own."""
    given = os.environ.get("BLUT_CGROUP_PARENT", "").strip()
    if given:
        return given
    return own_cgroup_dir(version)


@functools.cache
def own_cgroup_dir(version: int) -> str | None:
    """This process's own cgroup directory in the hierarchy of cgroup ``version`` (once)."""
    return files.own_dir(version)


def cgroup_layout(version: int) -> CgroupLayout:
    """The control files of cgroup ``version`` (1 or 2)."""
    return V1 if version == 1 else V2


def check_cgroup_base(layout: CgroupLayout, base: str) -> str | None:
    """``None`` when a capped child can be made under ``base``; else why not (one line)."""
    if not os.path.isdir(base):
        return f"{base} does not exist"
    if layout.version == 2 and not files.v2_has_memory(base):
        with contextlib.suppress(OSError):  # fails when base holds processes (not delegated)
            files.write_text(os.path.join(base, "cgroup.subtree_control"), "+memory")
        if not files.v2_has_memory(base):
            have = (files.read_text(os.path.join(base, "cgroup.controllers")) or "").split()
            return (f"the memory controller is not delegated to {base} "
                    f"(controllers: {', '.join(have) or 'none'})")
    sweep_stale(base)
    probe = os.path.join(base, f"blut-probe-{os.getpid()}-{os.urandom(2).hex()}")
    try:
        os.mkdir(probe)
    except OSError as exc:
        return f"cannot create a cgroup under {base}: {exc.strerror}"
    try:
        if not os.path.exists(os.path.join(probe, layout.limit)):
            return f"no {layout.limit} under {base} (memory controller not enabled there)"
        files.write_text(os.path.join(probe, layout.limit), str(64 << 20))
    except OSError as exc:
        return f"cannot set {layout.limit} under {base}: {exc.strerror}"
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(probe)
    return None


STALE_AFTER = 60.0  # seconds an empty cage whose name names no creator may exist before removal
#: A cage's name starts with its creator: ``blut-<pid>.<start>-`` (start: clock ticks after boot).
_CREATOR = re.compile(r"^blut-(\d+)\.(\d+)-")


def sweep_stale(base: str, *, older_than: float = STALE_AFTER) -> list[str]:
    """Remove the empty ``blut-*`` cages under ``base`` whose creator is gone (SIGKILL).

    The process that makes a cage removes it when its attempt ends; one killed first cannot,
    so every run's first cage (and the containment's probe) sweeps: an empty cage whose
    creator, named in it, no longer runs is removed at once, and a cage of a live creator is
    never touched. A cage without a creator in its name (an older blut's) goes once it has
    been empty for ``older_than`` seconds. A cage that still holds processes is left: its
    run's ``blut resume`` or ``blut cancel`` kills them, and the next sweep removes it.
    Returns the directories removed.
    """
    removed: list[str] = []
    now = time.time()
    try:
        names = [n for n in os.listdir(base) if n.startswith("blut-")]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(base, name)
        creator = _CREATOR.match(name)
        try:
            if creator is not None:
                if process_start(int(creator[1])) == int(creator[2]):
                    continue  # its maker lives and removes it itself
            elif now - os.stat(path).st_mtime < older_than:
                continue
            if files.procs(path):
                continue
            os.rmdir(path)
        except OSError:
            continue
        removed.append(path)
    return removed


_MAKER: tuple[int, str] = (0, "")


def _maker() -> str:
    """``<pid>.<start>`` of this process, once per process (a fork has its own)."""
    global _MAKER
    pid = os.getpid()
    if _MAKER[0] != pid:
        _MAKER = (pid, f"{pid}.{process_start(pid) or 0}")
    return _MAKER[1]


def cage_name(label: str) -> str:
    """A cgroup directory name for ``label``: its maker, safe characters, short, unique."""
    return f"blut-{_maker()}-{_UNSAFE.sub('_', label)[:80]}-{os.urandom(3).hex()}"


class CgroupCage(Cage):
    """One attempt's cgroup; see the module docstring for its life.

    With a ``pool`` (:mod:`blut_plugins.cgroup.pool`) the cgroup may be an empty one an
    earlier attempt of the run recycled, renamed after this attempt; :meth:`recycle` gives
    it back when the attempt has ended. With ``defer`` the cgroup is made when first needed
    (:meth:`wrap`, :meth:`adopt`, :meth:`join_spec`), or by the process given
    :meth:`make_spec`.
    """

    def __init__(self, base: str, label: str, cap_bytes: int | None, layout: CgroupLayout,
                 pool: CagePool | None = None, *, defer: bool = False) -> None:
        self.layout = layout
        self.cap = cap_bytes
        self.base = base
        self.path = os.path.join(base, cage_name(label))
        self.cgroup: str | None = self.path
        self._pid: int | None = None
        self._watch: usage.Watch | None = None
        self._released = False
        self._pool = pool
        self._empty = False  # the last kill() left cgroup.procs empty
        self._oom_base = 0  # the kernel's OOM-kill count when this attempt began
        self._oom_seen: int | None = None  # that count as oom_killed() last read it
        self._cached: int | None = None  # its file pages as peak_bytes() read them
        self._made = False  # made here (or recycled): the directory is there, capped
        if pool is not None and self._reuse(pool):
            self._made = True
            return
        if not defer:
            self._make()

    def _make(self) -> None:
        """Create the cgroup and write its cap (once)."""
        if self._made:
            return
        self._made = True
        try:
            os.mkdir(self.path)
        except OSError as exc:
            raise LauncherError(f"cannot create cgroup {self.path}: {exc.strerror}",
                                hint="set BLUT_CONTAINMENT to another backend") from None
        try:
            for name, value, required in self._writes():
                try:
                    files.write_text(self._file(name), value)
                except OSError:
                    if required:
                        raise
        except OSError as exc:
            self.release()
            raise LauncherError(f"cannot cap cgroup {self.path} at {self.cap} bytes: "
                                f"{exc.strerror}", hint="set BLUT_CONTAINMENT to another backend") from None

    def _writes(self) -> list[tuple[str, str, bool]]:
        """What makes a fresh cgroup this cage: (control file's name, value, whether it must
        succeed).

        The memory limit first: v1 never lets it exceed the memory+swap limit, which is
        absent without swap accounting; v2's group OOM kill where the kernel has it.
        """
        layout, out = self.layout, []
        if self.cap is not None:
            out.append((layout.limit, layout.limit_value(self.cap), True))
            out.append((layout.swap_limit, layout.swap_value(self.cap), False))
        if layout.oom_group:
            out.append((layout.oom_group, "1", False))
        return out

    def make_spec(self) -> dict[str, Any]:
        """:meth:`join_spec` for a process that makes this cage itself before it joins it.

        ``make`` is the cgroup directory to create and ``write`` the control files to write
        in it first, in order (``[name, value, required]``), as :meth:`_make` would: a fork-server
        worker does both, then joins, before anything of its stage runs, so the driver pays
        neither the ``mkdir`` nor the writes. A cage already made (recycled, or made for
        :meth:`wrap`) is only joined. The spec goes to at most one process, and the cage is
        then not used to start another (:meth:`wrap`, :meth:`adopt` would make it again);
        until that process made it, the cage reads as an empty cgroup that is gone.
        """
        spec = self._spec()
        if not self._made:
            spec["make"] = self.path
            spec["write"] = [list(w) for w in self._writes()]
        return spec

    def _reuse(self, pool: CagePool) -> bool:
        """Take an empty cgroup from the pool as this cage; ``False``: none could be used."""
        while (idle := pool.take()) is not None:
            try:
                os.rename(idle.path, self.path)
            except OSError:
                remove_empty(idle.path, timeout=0.0)
                continue
            try:
                if idle.cap != self.cap:
                    self._set_cap(self.cap, idle.cap)
            except OSError:  # e.g. a cap below what the kernel could not reclaim: a fresh one
                remove_empty(self.path, timeout=0.0)
                continue
            self._oom_base = idle.oom_base
            return True
        return False

    def _set_cap(self, cap: int | None, previous: int | None) -> None:
        """Write the cap (``None``: none) over ``previous`` (``None``: a fresh cgroup's none).

        v1 never lets the memory limit exceed the memory+swap limit: a cap that rises
        writes the latter first, one that falls the former.
        """
        limit = (self._file(self.layout.limit), self.layout.limit_value(cap))
        swap = (self._file(self.layout.swap_limit), self.layout.swap_value(cap))
        rising = previous is not None and (cap is None or cap > previous)
        for path, value in (swap, limit) if rising else (limit, swap):
            if path == swap[0]:
                with contextlib.suppress(OSError):  # absent without swap accounting
                    files.write_text(path, value)
            else:
                files.write_text(path, value)

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}"  # base is a directory path: no join needed

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """Start ``argv`` inside the cgroup: it joins before ``exec``, so nothing runs uncapped.

        Where ``/bin/sh`` exists the child joins through a one-line shell shim (``echo $$ >
        cgroup.procs && exec argv``): that keeps the parent's fast spawn path, which a
        Python pre-exec function would disable. Otherwise a pre-exec function joins.
        """
        self._make()
        procs = self._file("cgroup.procs")
        if os.path.exists(_SHELL):
            return [_SHELL, "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv], None

        def join() -> None:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)

        return list(argv), join

    def attach(self, pid: int) -> None:
        """Remember the stage's pid (it joined the cgroup before exec); sample its usage."""
        self._pid = pid
        self._empty = False
        self._start_watch()

    def join_spec(self) -> dict[str, Any] | None:
        """A forked stage writes its own pid to ``cgroup.procs`` before it runs.

        ``home_procs`` is where a reused worker goes back to after the stage: the cgroup
        of this process (the fork server's, which this process started).
        """
        self._make()
        return self._spec()

    def _spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"cgroup_procs": self._file("cgroup.procs")}
        home = own_cgroup_dir(self.layout.version)
        if home is not None:
            spec["home_procs"] = os.path.join(home, "cgroup.procs")
        return spec

    def adopt(self, pid: int) -> bool:
        """Move ``pid`` (a forked stage that has not started yet) into the cgroup."""
        self._make()
        files.write_text(self._file("cgroup.procs"), str(pid))
        self._pid = pid
        self._empty = False
        self._start_watch()
        return True

    def _start_watch(self) -> None:
        if self._watch is None:
            self._watch = usage.SAMPLER.watch(self.path, self.layout.version)

    def _stop_watch(self) -> int:
        """Stop sampling; the highest unreclaimable usage seen (0: never sampled)."""
        watch, self._watch = self._watch, None
        return 0 if watch is None else usage.SAMPLER.unwatch(watch)

    def peak_bytes(self) -> int | None:
        """The memory the stage needed: the kernel's peak for the whole cgroup less the page
        cache it could reclaim (``None`` without a kernel peak: before 5.19 on v2)."""
        sampled = self._stop_watch()
        peak = files.read_int(self._file(self.layout.peak))
        if peak is None:
            return None
        self._cached = usage.file_pages(self.path, self.layout.version)
        return usage.need_bytes(self.path, self.layout.version, peak, sampled, self._cached)

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup in this attempt
        (a recycled cgroup's count grew since the attempt began)."""
        events = files.read_keyed(self._file(self.layout.events))
        count = events.get("oom_kill", 0) + events.get("oom_group_kill", 0)
        if self._empty:  # final: recycle() keeps it as the next attempt's baseline
            self._oom_seen = count
        return count > self._oom_base

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, forks included, until it is empty."""
        self._empty = False
        if self.layout.kill and os.path.exists(self._file(self.layout.kill)):
            with contextlib.suppress(OSError):
                files.write_text(self._file(self.layout.kill), "1")
        for _ in range(200):
            pids = files.procs(self.path)
            if not pids:
                self._empty = True
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)

    def recycle(self) -> None:
        """End the attempt and give the cgroup to the pool (see :mod:`.pool`), else release.

        Only an empty cgroup (what is left in it is killed and waited for) that still has
        at most ``MAX_LEFT`` bytes charged besides at most ``MAX_CACHE`` of page cache is
        kept: its peak and fail counters are reset, its OOM-kill count becomes the next
        attempt's baseline, and it is renamed out of this attempt's name at once.
        """
        keep = self._pool
        if self._released or keep is None or keep.closed or self.layout.failcnt is None:
            self.release()
            return
        self._stop_watch()
        # Empty once kill() found it so after the attempt ended (the launcher's reap): nothing
        # outside a cgroup joins it on its own. Otherwise look, kill and wait.
        if not self._empty or self._pid is None:
            self._oom_seen = self._cached = None
            self.kill()
            if not self._empty:
                self.release()
                return
        # What is still charged: page cache (a later peak less the cache its cgroup still
        # holds sees past it, up to MAX_CACHE) and what cannot be reclaimed (MAX_LEFT).
        charged = files.read_int(self._file(self.layout.usage))
        cached = self._cached if self._cached is not None else \
            usage.file_pages(self.path, self.layout.version)
        if charged is None or cached is None or cached > MAX_CACHE or charged - cached > MAX_LEFT:
            self.release()
            return
        count = self._oom_seen
        if count is None:
            events = files.read_keyed(self._file(self.layout.events))
            count = events.get("oom_kill", 0) + events.get("oom_group_kill", 0)
        idle = os.path.join(self.base, f"blut-{_maker()}-pool-{os.urandom(3).hex()}")
        try:
            files.write_text(self._file(self.layout.peak), "0")  # the peak is usage now
            files.write_text(self._file(self.layout.failcnt), "0")
            os.rename(self.path, idle)
        except OSError:
            self.release()
            return
        self._released = True
        if not keep.put(Idle(path=idle, cap=self.cap, oom_base=count)):
            remove_empty(idle)

    def release(self) -> None:
        """Kill what is left and remove the cgroup (retrying while the dead are exiting)."""
        if self._released:
            return
        self._stop_watch()
        if not self._empty:  # (an empty cage stays so: nothing joins a cgroup on its own)
            self.kill()
        deadline = time.monotonic() + 2.0
        while True:
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    get_logger().warning("cgroup_not_removed", cgroup=self.path, error=exc.strerror)
                    break
                self.kill()
                time.sleep(0.002)
        self._released = True
