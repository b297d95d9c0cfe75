"""The ``local`` launcher: each stage attempt is a process on this machine.

Entry point ``launcher-local`` (essential). Every attempt runs in its own session (so a
cancel reaches its whole process group) and, when containment is available, in its own
memory cage. Python stages run in workers of a pre-imported fork server (see
:mod:`blut_plugins.local.forkserver`; ``BLUT_FORKSERVER=0`` turns it off), each putting itself under
its cap before it runs, and reused for later stages when a stage ended cleanly in its own
cgroup (``BLUT_REUSE_WORKERS=0`` turns that off); command stages, and Python stages whose
cage cannot be joined that way, are started with ``subprocess``. The executor is woken by
the kernel through pidfds, or by the fork server's notices, never by busy polling.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Launcher, LauncherSpec


def _factory(options: Any = None, containment: Any = None) -> Launcher:
    """Import the implementation only when a run uses it (keeps start-up cheap)."""
    from blut_plugins.local.launcher import LocalLauncher

    return LocalLauncher(options, containment)


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    """Registration: the ``local`` launcher."""
    from blut_core import LauncherSpec

    yield LauncherSpec(name="local", summary="Run stages as contained processes on this machine.",
                       factory=_factory)
