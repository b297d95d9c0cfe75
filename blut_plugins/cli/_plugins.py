"""``blut plugins list``: what is installed, from which distribution, and what failed.

Entry point ``cli-plugins`` (essential).

Imported when the command is used: :mod:`blut_plugins.cli.plugins` registers it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blut_core.cli import echo_json, json_option, table

if TYPE_CHECKING:
    from blut_core import App


@click.group(name="plugins")
def plugins_group() -> None:
    """Inspect installed plugins and cookbooks."""


@plugins_group.command(name="list")
@json_option
@click.pass_obj
def list_plugins(app: App, as_json: bool) -> None:
    """List plugins (and cookbooks) with distribution, version and load errors."""
    app.registry.collect_all()  # a hook that raises is on record only once it was asked
    app.cookbooks.recipes  # noqa: B018 - likewise for the cookbooks' hooks (every one asked)
    rows = [{**r._asdict(), "kind": r.kind, "state": r.state} for r in app.pm.records]
    if as_json:
        echo_json(rows)
        return
    table([(r["name"], r["kind"], r["distribution"], r["version"],
            r["state"] if r["state"] != "failed" else f"FAILED: {r['error']}") for r in rows],
          ["NAME", "KIND", "DISTRIBUTION", "VERSION", "STATE"])
