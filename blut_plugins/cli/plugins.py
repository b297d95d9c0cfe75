"""``blut plugins list``: what is installed, from which distribution, and what failed.

Entry point ``cli-plugins`` (essential).

This module only registers the command: it is defined in :mod:`._plugins`, imported when
it is used, so other commands do not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from blut_core import hookimpl
from blut_core.cli import lazy_command

if TYPE_CHECKING:
    import click


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield lazy_command("plugins", "blut_plugins.cli._plugins:plugins_group")
