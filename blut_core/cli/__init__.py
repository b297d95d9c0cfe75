"""The ``blut`` command and what command plugins share to print results.

:func:`main` builds the App and dispatches to the commands plugins register; the output
helpers give every command the same ``--json`` flag, tables and sizes. Imports everything
below it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.cli.complete import complete_recipes as complete_recipes
    from blut_core.cli.complete import complete_runs as complete_runs
    from blut_core.cli.complete import complete_stages as complete_stages
    from blut_core.cli.entry import main as main
    from blut_core.cli.output import echo_json as echo_json
    from blut_core.cli.output import human_bytes as human_bytes
    from blut_core.cli.output import human_seconds as human_seconds
    from blut_core.cli.output import json_option as json_option
    from blut_core.cli.output import recipe_options as recipe_options
    from blut_core.cli.output import table as table
    from blut_core.cli.root import cli as cli
    from blut_core.host.commands import lazy_command as lazy_command

_WHERE = {
    "cli": "cli.root", "main": "cli.entry",
    "complete_recipes": "cli.complete", "complete_runs": "cli.complete",
    "complete_stages": "cli.complete",
    "echo_json": "cli.output", "human_bytes": "cli.output", "human_seconds": "cli.output",
    "json_option": "cli.output", "recipe_options": "cli.output", "table": "cli.output",
    "lazy_command": "host.commands",
}

__getattr__, __all__ = exports(__name__, _WHERE)
