"""``blut resume RUN``: continue a run whose driver was killed, cancelled, or that failed.

Entry point ``cli-resume``. Finished stages are not run again; interrupted ones restart, or
continue from their last ``ctx.checkpoint()``. Exit codes as for ``blut run``.

Imported when the command is used: :mod:`blut_plugins.cli.resume` registers it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from blut_core.cli import complete_runs, json_option

if TYPE_CHECKING:
    from blut_core import App


@click.command(name="resume")
@click.argument("run", shell_complete=complete_runs)
@click.option("--fail-fast", is_flag=True, help="Stop everything at the first failed stage.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Stages at once, at most (default: the CPUs blut may use); memory may allow fewer.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Live progress on stderr: a table on a terminal, plain lines otherwise.")
@json_option
@click.pass_context
def resume_command(ctx: click.Context, run: str, fail_fast: bool, jobs: int | None,
                   progress: bool, as_json: bool) -> None:
    """Continue RUN (id, unique prefix, or 'latest') in its own run directory."""
    from blut_core import ExecOptions
    from blut_core.run import check_paths, resume_run, sink_for
    from blut_plugins.cli._summary import finish

    app: App = ctx.obj
    check_paths(app)  # BLUT_HOME, calibration, BLUT_LEDGER and room: one line, before anything
    options = ExecOptions(fail_fast=fail_fast, jobs=jobs if jobs is not None else app.settings.jobs)
    summary = resume_run(app, run, options=options,
                         progress=sink_for(sys.stdout.isatty(), enabled=progress))
    finish(ctx, summary, as_json=as_json)
