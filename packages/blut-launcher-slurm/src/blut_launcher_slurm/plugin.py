"""Registration of the ``slurm`` launcher (entry point ``launcher-slurm``).

The implementation (:mod:`blut_launcher_slurm.launcher`) is imported only when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Launcher, LauncherSpec


def _factory(options: Any = None, containment: Any = None) -> Launcher:
    from blut_launcher_slurm.launcher import SlurmLauncher

    return SlurmLauncher(options, containment)


class _Settings:
    """:class:`blut_launcher_slurm.settings.SlurmSettings`, imported only when a run uses the
    launcher: registering it is on every blut command's path, the settings module is not."""

    def __new__(cls, **fields: Any) -> Any:
        from blut_launcher_slurm.settings import SlurmSettings

        return SlurmSettings(**fields)

    @staticmethod
    def from_mapping(data: Mapping[str, Any]) -> Any:
        from blut_launcher_slurm.settings import SlurmSettings

        return SlurmSettings.from_mapping(data)


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    """The ``slurm`` launcher: stages as batch jobs, ``--mem`` their kernel memory cap."""
    from blut_core import LauncherSpec

    yield LauncherSpec(name="slurm", summary="Run stages as Slurm batch jobs (--mem is the cap).",
                       factory=_factory, settings=_Settings, remote=True)
