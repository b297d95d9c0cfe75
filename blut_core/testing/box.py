"""A small box on a big machine: a memory cgroup a test runs ``blut`` in, so that blut's probe
reads its limit as the machine's memory and a recipe is sized, admitted and capped as on a
machine that small.

- :func:`memory_box` makes the cgroup (skipping the test, saying why, where none can be made)
  and removes it, with anything left in it, afterwards;
- :func:`in_box` prefixes a command line so that the process joins the box before it runs;
- :func:`oom_kills` counts the OOM kills of the box's own processes (a stage's are in its cage).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

_LIMIT = {1: ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
          2: ("memory.max", "memory.swap.max")}


def _remove(path: Path) -> None:
    """Kill what is left in ``path`` and below it, then remove the directories, deepest first."""
    from blut_core.broker.cgroups import procs

    dirs = sorted((Path(d) for d, _, _ in os.walk(path)), key=lambda d: len(d.parts), reverse=True)
    for d in dirs:
        deadline = time.monotonic() + 5
        while procs(str(d)) and time.monotonic() < deadline:
            for pid in procs(str(d)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        while time.monotonic() < deadline:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


@contextlib.contextmanager
def memory_box(limit: int, *, under: tuple[int, str] | None = None,
               name: str = "blut-testbox") -> Iterator[Path]:
    """A memory cgroup limited to ``limit`` bytes without swap, made under ``under`` (a cgroup
    version and directory; by default the memory cgroup of this process) and named after
    ``name``; the test is skipped where it cannot be made or limited."""
    import pytest

    from blut_core.broker.cgroups import own_memory_cgroup

    own = under if under is not None else own_memory_cgroup()
    if own is None or not os.access(own[1], os.W_OK):
        pytest.skip("no writable memory cgroup to make a box in")
    version, base = own
    box = Path(base, f"{name}-{os.getpid()}-{os.urandom(3).hex()}")
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


def in_box(box: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` run so that its process joins ``box`` first (it joins, then ``exec``s)."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(box / "cgroup.procs"), *argv]


def oom_kills(box: Path) -> int:
    """OOM kills the kernel counted for processes of the box itself (not of its stages)."""
    for name in ("memory.oom_control", "memory.events"):
        with contextlib.suppress(OSError):
            for line in (box / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return 0
