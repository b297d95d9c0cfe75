"""The stage cgroups a fork server removes when its driver was killed before it could.

The driver makes each attempt's cage and removes it when it reaps the attempt. A driver that
is killed (SIGKILL) reaps nothing; its fork server sees it go, kills its workers, and then
removes the cages they had joined, so that none is left waiting for a later blut's sweep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def joined(request: Mapping[str, Any]) -> str | None:
    """The cgroup directory a worker joins for ``request`` (``None``: it joins none)."""
    procs = (request.get("join") or {}).get("cgroup_procs")
    return os.path.dirname(str(procs)) if procs else None


def kill(*, groups: Iterable[int], cages: Iterable[str], reap: Callable[[], None],
         timeout: float = 2.0) -> None:
    """SIGKILL the process groups ``groups``, then remove each of ``cages`` once what was in
    it has exited (``reap`` reaps the caller's children meanwhile); a cage still busy after
    ``timeout`` seconds is left to the next sweep."""
    for pid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    left = set(cages)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        reap()
        for cage in list(left):
            try:
                os.rmdir(cage)
            except FileNotFoundError:
                pass
            except OSError:
                continue  # its processes are still exiting
            left.discard(cage)
        if left:
            time.sleep(0.005)
