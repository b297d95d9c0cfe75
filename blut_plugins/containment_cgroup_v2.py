"""The ``cgroup-v2`` containment: a child cgroup in a delegated cgroup v2 subtree.

Entry point ``containment-cgroup-v2``. Caps ``memory.max`` (``memory.swap.max`` 0,
``memory.oom.group`` 1 so an OOM kills the whole stage), reads the peak from
``memory.peak`` (kernel ≥ 5.19) and OOM kills from ``memory.events``; cancel writes
``cgroup.kill``. Children are created under blut's own cgroup, or under
``BLUT_CGROUP_PARENT`` (e.g. a systemd-delegated directory), which must have the memory
controller in ``cgroup.subtree_control``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from blut_core import (
    Cage,
    CgroupCage,
    Containment,
    ContainmentSpec,
    LauncherError,
    cgroup_base,
    cgroup_layout,
    check_cgroup_base,
    hookimpl,
)


@functools.cache
def _reason() -> str | None:
    base = cgroup_base(2)
    if base is None:
        return "no cgroup v2 hierarchy is mounted for this process"
    return check_cgroup_base(cgroup_layout(2), base)


class CgroupV2(Containment):
    """Caps each stage in its own v2 cgroup."""

    name = "cgroup-v2"

    def unusable_reason(self) -> str | None:
        """Probed once per process: memory is delegated and a capped child can be made."""
        return _reason()

    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """A fresh child cgroup capped at ``cap_bytes``."""
        base = cgroup_base(2)
        if base is None:
            raise LauncherError("no cgroup v2 hierarchy", hint="unset BLUT_CONTAINMENT")
        return CgroupCage(base, label, cap_bytes, cgroup_layout(2))


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``cgroup-v2`` backend (priority 10)."""
    yield ContainmentSpec(name="cgroup-v2", summary="cgroup v2 delegated subtree (child cgroups).",
                          factory=CgroupV2, priority=10)
