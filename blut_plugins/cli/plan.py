"""``blut plan RECIPE``: the DAG a run would execute, with each stage's cache state.

Entry point ``cli-plan``. Nothing runs and nothing is written.

This module only registers the command: it is defined in :mod:`._plan`, imported when
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
    yield lazy_command("plan", "blut_plugins.cli._plan:plan_command")
