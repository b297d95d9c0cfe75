"""``blut metrics RUN``: what a run's stages reported with ``ctx.log``, per step and final.

Entry point ``cli-metrics``. Reads the run directory, so it works while the run is running.

This module only registers the command: it is defined in :mod:`._metrics`, imported when
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
    yield lazy_command("metrics", "blut_plugins.cli._metrics:metrics_command")
