"""Implementation behind the ``containment-cgroup-v2`` plugin (imported only when used).

The ``cgroup-v2`` containment: a child cgroup in a delegated cgroup v2 subtree.
"""

from __future__ import annotations

import functools

from blut_core import (
    Cage,
    CgroupCage,
    Containment,
    LauncherError,
    cgroup_base,
    cgroup_layout,
    check_cgroup_base,
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
