"""Implementation behind the ``containment-cgroup-v1`` plugin (imported only when used).

The ``cgroup-v1`` containment: a child of blut's own cgroup in the v1 memory hierarchy.
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
    base = cgroup_base(1)
    if base is None:
        return "no cgroup v1 memory hierarchy is mounted for this process"
    return check_cgroup_base(cgroup_layout(1), base)


class CgroupV1(Containment):
    """Caps each stage in its own v1 memory cgroup."""

    name = "cgroup-v1"

    def unusable_reason(self) -> str | None:
        """Probed once per process: a capped child cgroup can be created and removed."""
        return _reason()

    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """A fresh child cgroup capped at ``cap_bytes``."""
        base = cgroup_base(1)
        if base is None:
            raise LauncherError("no cgroup v1 memory hierarchy", hint="unset BLUT_CONTAINMENT")
        return CgroupCage(base, label, cap_bytes, cgroup_layout(1))
