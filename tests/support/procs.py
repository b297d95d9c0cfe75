"""Waiting on processes in tests: whether a pid is still running, and polling for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie or a dead task is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, every: float = 0.05) -> None:
    """Poll ``predicate`` every ``every`` seconds until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("condition not met in time")
