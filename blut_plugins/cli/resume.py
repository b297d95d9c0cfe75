"""``blut resume RUN``: continue a run whose driver was killed, cancelled, or that failed.

Entry point ``cli-resume``. Finished stages are not run again; interrupted ones restart, or
continue from their last ``ctx.checkpoint()``. Exit codes as for ``blut run``.

This module only registers the command: it is defined in :mod:`._resume`, imported when
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
    yield lazy_command("resume", "blut_plugins.cli._resume:resume_command")
