"""Implementation behind the ``containment-rlimit`` plugin (imported only when used).

The ``rlimit`` containment: ``RLIMIT_AS`` set in the stage before ``exec``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from blut_core import Cage, Containment, ProcessGroupCage


class RlimitCage(ProcessGroupCage):
    """An address-space limit for one attempt's process group.

    Like the bare cage it keeps no peak, claims no OOM kill and kills the process group;
    what it adds is the limit, set before the stage runs.
    """

    def __init__(self, cap_bytes: int | None) -> None:
        super().__init__()
        self.cap = cap_bytes

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """The argv unchanged and a pre-exec step that sets ``RLIMIT_AS``."""
        if self.cap is None:
            return list(argv), None
        cap = self.cap

        def limit() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        return list(argv), limit

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
