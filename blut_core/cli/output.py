"""Writing command results to stdout: JSON for ``--json``, aligned plain tables otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from blut_core.model.sizes import format_size, human_seconds

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """The ``--json`` flag every read command has."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON on stdout.")(fn)


def recipe_options(fn: F) -> F:
    """``--params FILE`` and ``-p key=value`` for commands that take a recipe."""
    fn = click.option("-p", "--param", "overrides", multiple=True, metavar="KEY=VALUE",
                      help="Set a param (dotted keys for nesting; values are JSON literals "
                           "or plain strings). Repeatable.")(fn)
    fn = click.option("--params", "params_file",
                      type=click.Path(path_type=Path, dir_okay=False),
                      help="A TOML or JSON file of params.")(fn)
    return fn


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Print an aligned table; the last column is never padded."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        line = "  ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r))
        click.echo(click.style(line, bold=True) if n == 0 else line.rstrip())


#: ``1610612736`` → ``"1.5 GiB"`` (one formatting of sizes everywhere).
human_bytes = format_size

__all__ = ["echo_json", "human_bytes", "human_seconds", "json_option", "recipe_options", "table"]
