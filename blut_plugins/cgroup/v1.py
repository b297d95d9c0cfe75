"""The ``cgroup-v1`` containment: a child of blut's own cgroup in the v1 memory hierarchy.

Entry point ``containment-cgroup-v1``. Caps ``memory.limit_in_bytes`` (and
``memory.memsw.limit_in_bytes``, so the stage cannot swap past its cap), reads the peak
from ``memory.max_usage_in_bytes`` and OOM kills from the ``oom_kill`` line of
``memory.oom_control`` (``memory.failcnt`` is not reliable). Needs write access to the
hierarchy (root, or a delegated directory named by ``BLUT_CGROUP_PARENT``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Containment, ContainmentSpec


def _factory() -> Containment:
    """Import the implementation only when a run uses it (keeps start-up cheap)."""
    from blut_plugins.cgroup.backend import CgroupContainment

    return CgroupContainment(1)


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``cgroup-v1`` backend (priority 20)."""
    from blut_core import ContainmentSpec

    yield ContainmentSpec(name="cgroup-v1", summary="cgroup v1 memory controller (child cgroups).",
                          factory=_factory, priority=20)
