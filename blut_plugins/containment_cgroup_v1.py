"""The ``cgroup-v1`` containment: a child of blut's own cgroup in the v1 memory hierarchy.

Entry point ``containment-cgroup-v1``. Caps ``memory.limit_in_bytes`` (and
``memory.memsw.limit_in_bytes``, so the stage cannot swap past its cap), reads the peak
from ``memory.max_usage_in_bytes`` and OOM kills from the ``oom_kill`` line of
``memory.oom_control`` (``memory.failcnt`` is not reliable). Needs write access to the
hierarchy (root, or a delegated directory named by ``BLUT_CGROUP_PARENT``).
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


@hookimpl
def blut_containments() -> Iterator[ContainmentSpec]:
    """Registration: the ``cgroup-v1`` backend (priority 20)."""
    yield ContainmentSpec(name="cgroup-v1", summary="cgroup v1 memory controller (child cgroups).",
                          factory=CgroupV1, priority=20)
