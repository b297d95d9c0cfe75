"""Commands a plugin registers by name, imported only when they are used.

Every command module costs every ``blut`` process its import (click builds each option as
the module loads): ``blut run`` would pay for ``blut logs``, ``blut broker``, ``blut config``
and the rest. A plugin's ``blut_commands`` may instead yield
``lazy_command("logs", "my_plugin._logs:logs")``: the command's module is imported when
``blut logs`` runs, when the commands are listed (``blut --help``, completion) or when every
command is asked for (``blut plugins list``, the docs).
"""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyCommand(click.Command):
    """Stands in for the command ``target`` (``"package.module:attribute"``) names, until
    :meth:`load` imports it. The root group runs the loaded command, never this one."""

    def __init__(self, name: str, target: str) -> None:
        super().__init__(name)
        self.target = target
        self._loaded: click.Command | None = None

    def load(self) -> click.Command:
        """The command itself, its module imported on first use."""
        if self._loaded is None:
            module, _, attribute = self.target.partition(":")
            found: Any = importlib.import_module(module)
            for part in filter(None, attribute.split(".")):
                found = getattr(found, part)
            if not isinstance(found, click.Command):
                raise TypeError(f"{self.target} is a {type(found).__name__}, not a click command")
            if found.name != self.name:
                raise ValueError(f"{self.target} is the command {found.name!r}, not {self.name!r}")
            self._loaded = found
        return self._loaded


def lazy_command(name: str, target: str) -> click.Command:
    """What ``blut_commands`` yields for the command ``name`` defined at ``target``
    (``"package.module:attribute"``), imported only when it is used."""
    return LazyCommand(name, target)
