"""A private parent cgroup for a test's cages (``BLUT_CGROUP_PARENT``), and what is left in it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def private_parent(base: str, prefix: str, version: int,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new cgroup under ``base`` exported as ``BLUT_CGROUP_PARENT`` for blut and its
    subprocesses; on the way out the cages a failed test left are killed and removed with it."""
    path = Path(base, f"{prefix}-{os.getpid()}-{os.urandom(3).hex()}")
    path.mkdir()
    if version == 2:
        (path / "cgroup.subtree_control").write_text("+memory")
    monkeypatch.setenv("BLUT_CGROUP_PARENT", str(path))
    try:
        yield path
    finally:
        for child in path.glob("blut-*"):  # what a failed test left: not for the next one
            for pid in (child / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            rmdir_patiently(child)
        rmdir_patiently(path)


def rmdir_patiently(path: Path) -> None:
    """Remove the cgroup ``path``, retrying for 5 s while the kernel still counts a task in it."""
    deadline = time.monotonic() + 5
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def cages(parent: Path) -> list[str]:
    """The names of the ``blut-*`` cages in ``parent``, sorted."""
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("blut-"))
