"""``blut logs RUN [STAGE] [--attempt N] [-f]``: what stages wrote to stdout and stderr.

Entry point ``cli-logs``. Each attempt of each stage keeps ``stdout.log`` and ``stderr.log``
in its attempt directory (``stages/<name>/attempts/<n>/``). Without ``STAGE`` every stage's
last attempt is shown, each log under a ``==> … <==`` header (as ``tail`` does with several
files); with ``STAGE`` only that stage's, and ``--attempt N`` picks an earlier attempt.
``-f`` keeps printing what is written until the run ends (a retry's new attempt is followed
as it starts, under a header); with ``STAGE``, until that stage is done.

This module only registers the command: it is defined in :mod:`._logs`, imported when
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
    yield lazy_command("logs", "blut_plugins.cli._logs:logs_command")
