"""``blut broker``: the machine's memory, stage footprints, calibration and bookings.

Entry point ``cli-broker``. Every command is read-only except ``calibration forget``, and
every one has ``--json``.

This module only registers the command: it is defined in :mod:`._broker`, imported when
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
    yield lazy_command("broker", "blut_plugins.cli._broker:broker_group")
