"""Implementation behind the ``containment-bare`` plugin (imported only when used).

The ``bare`` containment: no cap at all. ``blut plan`` and ``blut run`` warn loudly.
"""

from __future__ import annotations

from blut_core import Cage, Containment, ProcessGroupCage


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
        return ProcessGroupCage()
