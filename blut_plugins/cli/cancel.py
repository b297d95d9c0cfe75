"""``blut cancel RUN``: stop a run from another terminal.

Entry point ``cli-cancel``. The driver receives SIGTERM, kills every stage's process group,
releases its memory bookings and records the run as cancelled. A run whose driver is already
gone (interrupted) has its leftover stage processes killed and is recorded as cancelled.

This module only registers the command: it is defined in :mod:`._cancel`, imported when
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
    yield lazy_command("cancel", "blut_plugins.cli._cancel:cancel_command")
