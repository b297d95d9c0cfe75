"""``blut cancel RUN``: stop a run from another terminal.

Entry point ``cli-cancel``. The driver receives SIGTERM, kills every stage's process group,
releases its memory bookings and records the run as cancelled. A run whose driver is already
gone (interrupted) has its leftover stage processes killed and is recorded as cancelled.

Imported when the command is used: :mod:`blut_plugins.cli.cancel` registers it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from blut_core.cli import complete_runs

if TYPE_CHECKING:
    from blut_core import App


@click.command(name="cancel")
@click.argument("run", shell_complete=complete_runs)
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the run to stop.")
@click.pass_context
def cancel_command(ctx: click.Context, run: str, wait: float) -> None:
    """Cancel RUN (id, unique prefix, or 'latest')."""
    from blut_core.run import cancel_run

    app: App = ctx.obj
    state = cancel_run(app, run, wait=wait)
    click.echo(f"{run}: {state}")
    if state == "running":
        click.echo(f"the run has not stopped within {wait:g}s; it is still stopping", err=True)
        ctx.exit(1)
