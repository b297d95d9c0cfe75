"""Registration of the ``slurm`` launcher (entry point ``launcher-slurm``).

The implementation (:mod:`blut_launcher_slurm.launcher`) is imported only when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Launcher, LauncherSpec


def _factory(options: Any = None, containment: Any = None) -> Launcher:
    from blut_launcher_slurm.launcher import SlurmLauncher

    return SlurmLauncher(options, containment)


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    """The ``slurm`` launcher: stages as batch jobs, ``--mem`` their kernel memory cap."""
    from blut_core import LauncherSpec
    from blut_launcher_slurm.settings import SlurmSettings

    yield LauncherSpec(name="slurm", summary="Run stages as Slurm batch jobs (--mem is the cap).",
                       factory=_factory, settings=SlurmSettings, remote=True)
