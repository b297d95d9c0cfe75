"""The ``systemd`` containment: each stage in a transient scope with ``MemoryMax``.

Entry point ``containment-systemd``. Runs ``systemd-run --scope -p MemoryMax=… -p
MemorySwapMax=0 -- argv`` (``--user`` when not root). Usable only where systemd is PID 1 and
the probe scope starts: on machines where PID 1 is something else ``systemd-run`` fails
("System has not been booted with systemd"), which is detected once per process. The peak
(``MemoryPeak``, systemd ≥ 255) and OOM result (``Result=oom-kill``) are asked of
``systemctl show``; a scope that ended cleanly may already be gone, so its peak can be
unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Containment, ContainmentSpec


def _factory() -> Containment:
    """Import the implementation only when a run uses it (keeps start-up cheap)."""
    from blut_plugins.systemd.backend import Systemd

    return Systemd()


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``systemd`` backend (priority 30)."""
    from blut_core import ContainmentSpec

    yield ContainmentSpec(name="systemd",
                          summary="systemd-run --scope -p MemoryMax=… (systemd hosts).",
                          factory=_factory, priority=30)
