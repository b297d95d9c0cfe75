"""``blut run RECIPE``: execute a recipe and print a summary.

Entry point ``cli-run`` (essential). Exit code 0 when every stage succeeded or was cached,
1 when a stage failed, 2 for bad input, 3 when admission refused a stage, 130 when
cancelled.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from blut_core import hookimpl
from blut_core.cli import complete_recipes, json_option, recipe_options

if TYPE_CHECKING:
    from blut_core import App, Broker


def positive_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--deadline``: a positive, finite number of seconds (``nan``, ``inf``, zero and
    negatives are refused, as click's own usage errors are)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of seconds", ctx, param) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise click.BadParameter(f"{value!r} is not a positive, finite number of seconds", ctx, param)
    return seconds


@click.command(name="run")
@click.argument("recipe", shell_complete=complete_recipes)
@recipe_options
@click.option("--no-cache", is_flag=True, help="Run every stage even if its result is cached.")
@click.option("--launcher", default="local", show_default=True,
              help="Where stages run (local, or an installed launcher such as slurm or ray).")
@click.option("--fail-fast", is_flag=True, help="Stop everything at the first failed stage.")
@click.option("--deadline", default=None, callback=positive_seconds,
              metavar="SECONDS", help="Cancel the whole run when it takes longer than this.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Stages at once, at most (default: the CPUs blut may use); memory may allow fewer.")
@click.option("--no-calibration", is_flag=True,
              help="Ignore measured memory peaks for this run, and keep what it learns out of "
                   "the store (also BLUT_NO_CALIBRATION=1).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Live progress on stderr: a table on a terminal, plain lines otherwise.")
@click.option("--report", is_flag=True,
              help="At the end, write the run's HTML report (report.html in its directory).")
@json_option
@click.pass_context
def run_command(ctx: click.Context, recipe: str, params_file: Path | None,
                overrides: tuple[str, ...], no_cache: bool, launcher: str, fail_fast: bool,
                deadline: float | None, jobs: int | None, no_calibration: bool, progress: bool,
                report: bool, as_json: bool) -> None:
    """Run RECIPE and print what ran, what was cached, and what failed."""
    from blut_core import ExecOptions
    from blut_core.run import prepare, sink_for, start_run
    from blut_plugins.cli._summary import finish

    app: App = ctx.obj
    prepared = prepare(app, recipe, params_file=params_file, overrides=overrides)
    options = ExecOptions(no_cache=no_cache, fail_fast=fail_fast, deadline=deadline,
                          jobs=jobs if jobs is not None else app.settings.jobs)
    summary = start_run(app, prepared, launcher=launcher, options=options,
                        no_calibration=no_calibration, on_broker=warn_if_uncapped,
                        progress=sink_for(sys.stdout.isatty(), enabled=progress))
    if report:
        write_report(app, summary.run_dir)
    finish(ctx, summary, as_json=as_json)


def write_report(app: App, run_dir: Path) -> None:
    """Write the run's HTML report into its directory; a failure is a warning, not the run's."""
    from blut_core.host import get_logger

    try:
        spec = app.registry.require("reports", "html")
        target = run_dir / f"report{spec.suffix}"
        target.write_text(spec.render(run_dir), encoding="utf-8")
    except Exception as exc:  # the run is over and recorded: its report must not change that
        get_logger().warning("report_not_written", run_dir=str(run_dir),
                             error=getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                             hint="write it later with `blut runs report RUN`")
        return
    click.echo(f"report {target}", err=True)


def warn_if_uncapped(broker: Broker) -> None:
    """A loud warning on stderr when no memory containment is usable on this machine (the
    run's broker has probed it; a run with every stage cached needs none and is not told)."""
    warning = broker.selection.warning
    if warning:
        click.secho(f"WARNING: {warning}", fg="red", bold=True, err=True)


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield run_command
