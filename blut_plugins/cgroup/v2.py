"""The ``cgroup-v2`` containment: a child cgroup in a delegated cgroup v2 subtree.

Entry point ``containment-cgroup-v2``. Caps ``memory.max`` (``memory.swap.max`` 0,
``memory.oom.group`` 1 so an OOM kills the whole stage), reads the peak from
``memory.peak`` (kernel ≥ 5.19) and OOM kills from ``memory.events``; cancel writes
``cgroup.kill``. Children are created under blut's own cgroup, or under
``BLUT_CGROUP_PARENT`` (e.g. a systemd-delegated directory), which must have the memory
controller in ``cgroup.subtree_control``.
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

    return CgroupContainment(2)


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``cgroup-v2`` backend (priority 10)."""
    from blut_core import ContainmentSpec

    yield ContainmentSpec(name="cgroup-v2", summary="cgroup v2 delegated subtree (child cgroups).",
                          factory=_factory, priority=10)
