"""Implementation behind the ``containment-bare`` plugin (imported only when used).

The ``bare`` containment: no cap at all. ``blut plan`` and ``blut run`` warn loudly.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

from blut_core import Cage, Containment


class BareCage(Cage):
    """No cap; kill reaches the stage's process group only."""

    def __init__(self) -> None:
        self._pid: int | None = None

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """The argv unchanged."""
        return list(argv), None

    def attach(self, pid: int) -> None:
        """Remember the stage's pid (its process group)."""
        self._pid = pid

    def join_spec(self) -> dict[str, Any] | None:
        """Nothing to join."""
        return {}

    def adopt(self, pid: int) -> bool:
        """Nothing to set up: remember the pid."""
        self._pid = pid
        return True

    def peak_bytes(self) -> int | None:
        """Unknown."""
        return None

    def oom_killed(self) -> bool:
        """Unknown, so never claimed."""
        return False

    def kill(self) -> None:
        """SIGKILL the stage's process group."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)

    def release(self) -> None:
        """Nothing to remove."""


class Bare(Containment):
    """No containment."""

    name = "bare"
    enforces = False
    kernel_evidence = False

    def unusable_reason(self) -> str | None:
        """Always usable."""
        return None

    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """A cage that caps nothing."""
        return BareCage()
