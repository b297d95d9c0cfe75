"""``blut recipes list``, ``blut recipes show NAME`` and ``blut recipes new NAME``.

Entry point ``cli-recipes``. ``new`` scaffolds a cookbook distribution (templates in
:mod:`._scaffold`) that installs and passes its own tests as generated.

This module only registers the command: it is defined in :mod:`._recipes`, imported when
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
    yield lazy_command("recipes", "blut_plugins.cli._recipes:recipes_group")
