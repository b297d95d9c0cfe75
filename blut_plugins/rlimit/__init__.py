"""The ``rlimit`` containment: ``RLIMIT_AS`` set in the stage before ``exec``.

Entry point ``containment-rlimit``. A fallback where no cgroup can be made: it caps each
process's address space (not its resident memory, so a stage that reserves much virtual
memory fails early), its children inherit their own, separate limit, the kernel reports no
peak, and a failed allocation is an ordinary error, not an OOM kill.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Containment, ContainmentSpec


def _factory() -> Containment:
    """Import the implementation only when a run uses it (keeps start-up cheap)."""
    from blut_plugins.rlimit.backend import Rlimit

    return Rlimit()


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``rlimit`` backend (priority 40)."""
    from blut_core import ContainmentSpec

    yield ContainmentSpec(name="rlimit",
                          summary="RLIMIT_AS per stage process (no peak, no OOM evidence).",
                          factory=_factory, priority=40)
