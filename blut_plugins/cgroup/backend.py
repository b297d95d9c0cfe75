"""Implementation behind the ``containment-cgroup-v2`` and ``containment-cgroup-v1`` plugins.

Each stage gets a child of blut's own cgroup (v1: in the memory hierarchy; v2: in a
delegated subtree), capped and removed by :class:`~blut_plugins.cgroup.cage.CgroupCage`. Imported only when
a run uses it.
"""

from __future__ import annotations

import functools
import os

from blut_core import Cage, Containment, LauncherError
from blut_plugins.cgroup.cage import (
    CgroupCage,
    cgroup_base,
    cgroup_layout,
    check_cgroup_base,
    sweep_stale,
)
from blut_plugins.cgroup.pool import CagePool

_MISSING = {1: "no cgroup v1 memory hierarchy is mounted for this process",
            2: "no cgroup v2 hierarchy is mounted for this process"}


@functools.cache
def _reason(version: int) -> str | None:
    base = cgroup_base(version)
    if base is None:
        return _MISSING[version]
    return check_cgroup_base(cgroup_layout(version), base)


class CgroupContainment(Containment):
    """Caps each stage in its own child cgroup of the given cgroup ``version``."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.name = f"cgroup-v{version}"
        self._swept = False
        # recycled empty cgroups (v1 only, and only when asked: see blut_plugins.cgroup.pool)
        self._pool: CagePool | None = None
        if version == 1 and os.environ.get("BLUT_CGROUP_POOL", "0") == "1":
            self._pool = CagePool()

    def unusable_reason(self) -> str | None:
        """Probed once per process: a capped child cgroup can be created and removed."""
        return _reason(self.version)

    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """A child cgroup capped at ``cap_bytes`` (an emptied one of the run's pool when there
        is one, renamed after ``label``); the first one of a run (a containment serves one
        run) sweeps what killed drivers left (:func:`sweep_stale`).

        Without a pool the cgroup is made when first needed: by this process to start or
        adopt a stage or to say how to join it, or by the fork-server worker that is given
        :meth:`~blut_plugins.cgroup.cage.CgroupCage.make_spec` (it makes, caps and joins
        it before the stage runs). Its name is this process's from the start, so a cage a
        worker made for a killed driver is swept like any other it left."""
        base = cgroup_base(self.version)
        if base is None:
            raise LauncherError(_MISSING[self.version], hint="unset BLUT_CONTAINMENT")
        if not self._swept:
            self._swept = True
            sweep_stale(base)
        if self._pool is not None and self._pool.closed:
            self._pool = CagePool()  # a containment used again after close() pools anew
        return CgroupCage(base, label, cap_bytes, cgroup_layout(self.version), self._pool,
                          defer=self._pool is None)

    def close(self) -> None:
        """Remove the recycled cgroups kept for later attempts."""
        if self._pool is not None:
            self._pool.close()
