"""The ``bare`` containment: no cap at all. ``blut plan`` and ``blut run`` warn loudly.

Entry point ``containment-bare`` (essential: the fallback when nothing else is usable).
Admission still books memory, but an estimate that is too small is not caught by the
kernel, and the OOM killer may take anything on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Containment, ContainmentSpec


def _factory() -> Containment:
    """Import the implementation only when a run uses it (keeps start-up cheap)."""
    from blut_plugins.bare.backend import Bare

    return Bare()


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``bare`` backend (priority 1000, the last resort)."""
    from blut_core import ContainmentSpec

    yield ContainmentSpec(name="bare", summary="No memory cap (loud warning).", factory=_factory,
                          priority=1000)
