"""Throw-away plugin modules for plugin-loading tests."""

from __future__ import annotations

from collections.abc import Iterator

from blut_core import LauncherSpec, hookimpl
from blut_core.host.interfaces import Launcher


class _Nope(Launcher):
    def submit(self, job):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def poll(self, handle):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def cancel(self, handle):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class DuplicateLocal:
    """Registers a second launcher called 'local'."""

    @hookimpl
    def blut_launchers(self) -> Iterator[LauncherSpec]:
        yield LauncherSpec(name="local", summary="an impostor", factory=_Nope)


class Misspelt:
    @hookimpl
    def blut_launcherz(self) -> Iterator[LauncherSpec]:
        yield from ()


extra = DuplicateLocal()
misspelt = Misspelt()


class RaisingCommands:
    """A plugin whose ``blut_commands`` raises: every other command must still work."""

    @hookimpl
    def blut_commands(self) -> Iterator[object]:
        raise RuntimeError("commands exploded")


class RaisingMetrics:
    """A metrics policy that raises: the built-in policy still decides."""

    @hookimpl(tryfirst=True)
    def blut_stage_metrics(self, run: object, stage: object, attempt: int,
                           metrics: object) -> str | None:
        raise RuntimeError("metrics exploded")


class RaisingConfigure:
    @hookimpl
    def blut_configure(self, settings: object) -> None:
        raise RuntimeError("configure exploded")


raising_commands = RaisingCommands()
raising_metrics = RaisingMetrics()
raising_configure = RaisingConfigure()
