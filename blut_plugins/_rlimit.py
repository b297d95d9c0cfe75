"""Implementation behind the ``containment-rlimit`` plugin (imported only when used).

The ``rlimit`` containment: ``RLIMIT_AS`` set in the stage before ``exec``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

from blut_core import Cage, Containment


class RlimitCage(Cage):
    """An address-space limit for one attempt's process group."""

    def __init__(self, cap_bytes: int | None) -> None:
        self.cap = cap_bytes
        self._pid: int | None = None

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """The argv unchanged and a pre-exec step that sets ``RLIMIT_AS``."""
        if self.cap is None:
            return list(argv), None
        cap = self.cap

        def limit() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        return list(argv), limit

    def attach(self, pid: int) -> None:
        """Remember the stage's pid (its process group)."""
        self._pid = pid

    def join_spec(self) -> dict[str, Any] | None:
        """A forked stage sets ``RLIMIT_AS`` on itself before it runs."""
        return {} if self.cap is None else {"rlimit_as": self.cap}

    def adopt(self, pid: int) -> bool:
        """Set ``RLIMIT_AS`` on a forked stage before it starts."""
        if self.cap is not None:
            import resource

            resource.prlimit(pid, resource.RLIMIT_AS, (self.cap, self.cap))
        self._pid = pid
        return True

    def peak_bytes(self) -> int | None:
        """Unknown: rlimits keep no peak."""
        return None

    def oom_killed(self) -> bool:
        """Never: an rlimit makes allocations fail, it does not kill."""
        return False

    def kill(self) -> None:
        """SIGKILL the stage's process group."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)

    def release(self) -> None:
        """Nothing to remove."""


class Rlimit(Containment):
    """Caps each stage's address space."""

    name = "rlimit"
    kernel_evidence = False

    def unusable_reason(self) -> str | None:
        """Usable wherever ``resource.RLIMIT_AS`` exists."""
        import resource

        return None if hasattr(resource, "RLIMIT_AS") else "RLIMIT_AS is not supported here"

    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """An rlimit for one attempt."""
        return RlimitCage(cap_bytes)
