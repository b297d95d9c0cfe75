"""Whole-process timing for bench_peers: wall and CPU from os.wait4, the machine's load, and a
sampler that watches a blut driver while it runs (its VmHWM, its stage cgroups, the ledger)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Sample:
    wall: float
    cpu: float  # user + sys of the process and every descendant it waited for
    maxrss_kib: int  # wait4's ru_maxrss: the largest of those processes


@dataclass
class Cmd:
    """One command of one peer for one workload, and what its timed runs measured."""

    wl: str
    peer: str
    argv: list[str]
    workdir: Path
    env: dict[str, str]
    n: int = 0
    cold: bool = True  # empty the work folder before every run
    setup: list[str] | None = None  # run once before the timed runs (W4: build the outputs)
    rounds: int = 7
    samples: list[Sample] = field(default_factory=list)
    failed: str = ""

    @property
    def key(self) -> str:
        return f"{self.wl}/{self.peer}"

    def median(self) -> float | None:
        return statistics.median(s.wall for s in self.samples) if self.samples else None

    def summary(self) -> dict[str, Any]:
        walls = [s.wall for s in self.samples]
        return {"workload": self.wl, "peer": self.peer, "n": self.n, "argv": self.argv,
                "runs": len(walls), "failed": self.failed or None,
                "median_s": statistics.median(walls) if walls else None,
                "min_s": min(walls, default=None), "max_s": max(walls, default=None),
                "cpu_median_s": statistics.median(s.cpu for s in self.samples) if walls else None,
                "maxrss_median_kib": (statistics.median(s.maxrss_kib for s in self.samples)
                                      if walls else None),
                "walls_s": walls}


#: where :func:`empty` moves what a work folder held, beside it, until :func:`take_out_trash`
TRASH = ".trash"


def empty(folder: Path) -> None:
    """Make ``folder`` a new empty folder for a cold run. What it held is moved aside (into
    :data:`TRASH` beside it) rather than deleted: :func:`take_out_trash` deletes it all once
    the rounds are over. Deleting thousands of files just before a run slows the files the
    run makes on some file systems (ext4 without a journal: :func:`file_system`), and that
    slowdown is the harness's doing, not the command's."""
    if folder.exists():
        trash = folder.parent / TRASH
        trash.mkdir(exist_ok=True)
        os.rename(folder, trash / f"{folder.name}.{time.monotonic_ns()}")
    folder.mkdir(parents=True)


def take_out_trash(root: Path) -> None:
    """Delete what :func:`empty` moved aside anywhere under ``root``."""
    for trash in sorted(root.rglob(TRASH)):
        shutil.rmtree(trash, ignore_errors=True)


def spawn(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)


def reap(proc: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, Sample]:
    t = time.perf_counter()
    proc = spawn(argv, cwd, env, log)
    code, usage = reap(proc)
    wall = time.perf_counter() - t
    return code, Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def run_once(cmd: Cmd, logs: Path) -> Sample | None:
    """One timed run of ``cmd`` (its folder emptied first when cold); None when it failed."""
    if cmd.cold:
        empty(cmd.workdir)
    log = logs / f"{cmd.wl}-{cmd.peer}.stderr"
    code, sample = timed(cmd.argv, cmd.workdir, cmd.env, log)
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no stderr)"]
        cmd.failed = f"exit {code}: {tail[0][:300]} (full stderr: {log})"
        return None
    return sample


class Load:
    """The machine's load over an interval: load averages, and the share of all CPUs' time
    that processes other than this one and its waited-for descendants used."""

    def __init__(self) -> None:
        self.load_before = os.getloadavg()
        self.stat_before = _proc_stat()
        self.ours_before = _our_cpu()
        self.t0 = time.monotonic()

    def finish(self) -> dict[str, Any]:
        busy0, total0 = self.stat_before
        busy1, total1 = _proc_stat()
        tick = os.sysconf("SC_CLK_TCK")
        busy = (busy1 - busy0) / tick
        capacity = (total1 - total0) / tick
        ours = _our_cpu() - self.ours_before
        others = max(0.0, busy - ours)
        return {"loadavg_before": list(self.load_before), "loadavg_after": list(os.getloadavg()),
                "seconds": time.monotonic() - self.t0, "cpus": os.cpu_count(),
                "busy_cpu_s": busy, "ours_cpu_s": ours, "others_cpu_s": others,
                "others_share": others / capacity if capacity else 0.0,
                "ours_share": ours / capacity if capacity else 0.0}


def _proc_stat() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs; idle and iowait are not busy; guest time is
    already inside user/nice."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(fields)
    return total - fields[3] - fields[4], total


def _our_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Watch:
    """What the sampler saw of a running blut driver."""

    vmhwm_kib: int = 0
    ticks: int = 0
    cgroups: set[str] = field(default_factory=set)  # stage cgroups seen under the driver's own
    bookings_max: int = -1  # most bookings the ledger file held at once (-1: never readable)
    ledger_unreadable: int = 0


def watched(argv: list[str], cwd: Path, env: dict[str, str], log: Path, ledger: Path,
            every: float = 0.003) -> tuple[int, Sample, Watch]:
    """Run ``argv`` like :func:`timed` while a thread samples /proc/PID/status (VmHWM), the
    memory cgroups created under the driver's own, and the bookings in the ledger file."""
    seen = Watch()
    t = time.perf_counter()
    proc = spawn(argv, cwd, env, log)
    done = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        parent: Path | None = None
        prefix = f"blut-{proc.pid}."
        while not done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        seen.vmhwm_kib = max(seen.vmhwm_kib, int(line.split()[1]))
                if parent is None:
                    parent = _memory_cgroup(proc.pid)
                if parent is not None:
                    seen.cgroups.update(n for n in os.listdir(parent) if n.startswith(prefix))
            except (OSError, ValueError):
                pass  # the process is gone or between states
            try:
                booked = json.loads(ledger.read_text()).get("bookings", [])
                seen.bookings_max = max(seen.bookings_max, len(booked))
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError):
                seen.ledger_unreadable += 1
            seen.ticks += 1
            done.wait(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code, usage = reap(proc)
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    return code, Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss), seen


def _memory_cgroup(pid: int) -> Path | None:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    return None


def file_system(path: Path) -> str:
    """What the file system under ``path`` is, in one line, and whether it is ext4 without a
    journal (read from /proc: the mount table and jbd2's list of journals).

    There, making an inode skips every inode of its group deleted in the last minute or so
    (ext4's ``recently_deleted``, reading their inode table blocks), so a run that makes files
    right after thousands were deleted pays for each of them (hence :func:`empty` deletes
    nothing during the rounds): blut makes some ten files and folders a stage (attempt,
    logs, context, output, cache entry) where the peers make next to none.
    """
    best: tuple[str, str, str, str] | None = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) < 6 or len(tail) < 2:
                    continue
                point = fields[4].replace("\\040", " ")
                inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
                if inside and (best is None or len(point) > len(best[0])):
                    best = (point, tail[0], tail[1], fields[5] + "," + (tail[2] if len(tail) > 2 else ""))
    except OSError:
        return "file system: unknown (no /proc/self/mountinfo)"
    if best is None:
        return "file system: unknown"
    point, kind, source, options = best
    text = f"file system of the work folder: {kind} on {source} (mounted at {point})"
    if kind == "ext4":
        journals = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
        device = os.path.basename(source)
        if not any(j.rsplit("-", 1)[0] == device for j in journals) and "lazytime" not in options:
            text += (", with no journal: an inode made there skips those of its group deleted"
                     " in the last minute or so, so runs just after many files were deleted are"
                     " slower for a tool that makes files (blut: some ten a stage; the peers:"
                     " next to none)")
    return text
