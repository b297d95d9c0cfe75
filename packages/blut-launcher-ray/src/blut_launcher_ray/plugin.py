"""Registration of the ``ray`` launcher (entry point ``launcher-ray``).

The implementation (:mod:`blut_launcher_ray.launcher`, and Ray itself) is imported only when
a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import Launcher, LauncherSpec


def _factory(options: Any = None, containment: Any = None) -> Launcher:
    from blut_launcher_ray.launcher import RayLauncher

    return RayLauncher(options, containment)


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    """The ``ray`` launcher: stages as Ray tasks, each under its own kernel cap inside the task."""
    from blut_core import LauncherSpec
    from blut_launcher_ray.settings import RaySettings

    yield LauncherSpec(name="ray", summary="Run stages as Ray tasks (memory= and a cgroup cap inside).",
                       factory=_factory, settings=RaySettings, remote=True)
