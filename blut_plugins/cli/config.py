"""``blut config show``: every setting, its value, and where it comes from.

Entry point ``cli-config``. A setting comes from its default, from a ``blut.toml`` (the
user's, or the project's found from the current directory; ``FILE:LINE``), or from its
``BLUT_*`` variable, which wins. A bad file is the one-line error every command gives (exit 2).

This module only registers the command: it is defined in :mod:`._config`, imported when
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
    yield lazy_command("config", "blut_plugins.cli._config:config_group")
