"""Registration of the ``ray`` launcher (entry point ``launcher-ray``).

The implementation (:mod:`blut_launcher_ray.launcher`, and Ray itself) is imported only when
a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Launcher, LauncherSpec


def _factory(options: Any = None, containment: Any = None) -> Launcher:
    from blut_launcher_ray.launcher import RayLauncher

    return RayLauncher(options, containment)


class _Settings:
    """:class:`blut_launcher_ray.settings.RaySettings`, imported only when a run uses the
    launcher: registering it is on every blut command's path, the settings module is not."""

    def __new__(cls, **fields: Any) -> Any:
        from blut_launcher_ray.settings import RaySettings

        return RaySettings(**fields)

    @staticmethod
    def from_mapping(data: Mapping[str, Any]) -> Any:
        from blut_launcher_ray.settings import RaySettings

        return RaySettings.from_mapping(data)


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    """The ``ray`` launcher: stages as Ray tasks, each under its own kernel cap inside the task."""
    from blut_core import LauncherSpec

    yield LauncherSpec(name="ray", summary="Run stages as Ray tasks (memory= and a cgroup cap inside).",
                       factory=_factory, settings=_Settings, remote=True)
