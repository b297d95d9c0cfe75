"""A small box on a big machine: ``blut`` run inside a memory cgroup of its own.

The probe reads the limit of the cgroup blut runs in as the box, and stages' cages are made
under it, so a real ``blut run`` in a 3 GiB cgroup behaves as on a 3 GiB machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core.testing import installed_distribution
from tests.support.cli import ROOT, blut_argv

_LIMIT = {1: ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
          2: ("memory.max", "memory.swap.max")}


def _base() -> tuple[int, str]:
    from blut_plugins.cgroup.cage import cgroup_base

    for version in (1, 2):
        base = cgroup_base(version)
        if base and os.path.isdir(base) and os.access(base, os.W_OK):
            return version, base
    pytest.skip("no writable memory cgroup to make a box in")


def _procs(path: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    return []


def _remove(path: Path) -> None:
    """Kill what is left in ``path`` and its children, then remove them, deepest first."""
    dirs = sorted((Path(d) for d, _, _ in os.walk(path)), key=lambda d: len(d.parts), reverse=True)
    for d in dirs:
        for _ in range(200):
            pids = _procs(d)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        for _ in range(200):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


@contextlib.contextmanager
def memory_box(limit: int) -> Iterator[Path]:
    """A child memory cgroup of this process's own, limited to ``limit`` bytes (no swap)."""
    version, base = _base()
    box = Path(base, f"blut-testbox-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        box.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup under {base}: {exc.strerror}")
    try:
        limit_file, swap_file = _LIMIT[version]
        try:
            (box / limit_file).write_text(str(limit))
        except OSError as exc:
            pytest.skip(f"cannot limit a memory cgroup under {base}: {exc.strerror}")
        with contextlib.suppress(OSError):
            (box / swap_file).write_text(str(limit) if version == 1 else "0")
        if version == 2:
            with contextlib.suppress(OSError):
                (box / "cgroup.subtree_control").write_text("+memory")
        yield box
    finally:
        _remove(box)


def memtest_env(home: Path, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``blut`` subprocess that sees the memtest cookbook installed."""
    site = installed_distribution(tmp / "memtest-site", "blut-memtest", "0.0",
                                  {"blut.cookbooks": {"memtest": "tests.broker.memcook"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUT_")}
    return {**env, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1",
            "BLUT_LEDGER": str(tmp / "ledger" / "ledger.json"),
            "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **extra}


def run_in_box(box: Path, *args: str, home: Path, tmp: Path, timeout: float = 120,
               **extra: str) -> subprocess.CompletedProcess[str]:
    """``blut ARGS`` started inside ``box`` (it joins before it ``exec``s)."""
    argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(box / "cgroup.procs"),
            *blut_argv(), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=memtest_env(home, tmp, **extra))


def oom_kills(box: Path) -> int:
    """OOM kills the kernel counted for processes of the box itself (not of its stages)."""
    for name in ("memory.oom_control", "memory.events"):
        with contextlib.suppress(OSError):
            for line in (box / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return 0
