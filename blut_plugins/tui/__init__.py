"""``blut tui``: a terminal cockpit over live and past runs.

Entry point ``cli-tui``. Views: runs, a run's DAG and stages (estimate, cap, live use,
peak), a live log tail, metric sparklines and the machine's memory (box, free, booked per
run and stage); ``c`` cancels the selected run after a confirmation. ``blut tui --check``
draws every view headless and exits 0 when each drew something. textual is imported only
when the command runs (:mod:`blut_plugins.tui.app`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from blut_core import ConfigError, hookimpl


@click.command(name="tui")
@click.option("--check", is_flag=True,
              help="Draw every view headless, print what each drew, exit 0 if all drew something.")
@click.option("--refresh", type=click.FloatRange(min=0.2), default=1.5, show_default=True,
              metavar="SECONDS", help="How often the views re-read runs, the ledger and logs.")
@click.option("--run", "run_ref", metavar="RUN",
              help="Open this run (id, unique prefix, or 'latest') instead of the newest live one.")
@click.pass_context
def tui_command(ctx: click.Context, check: bool, refresh: float, run_ref: str | None) -> None:
    """The cockpit: runs, a run's DAG, logs, metrics and memory, live."""
    app = ctx.obj
    run_id = None
    if run_ref is not None:
        from blut_core.store import find_run

        run_id = find_run(app.settings.runs_dir, run_ref).name
    try:
        import textual  # noqa: F401
    except ImportError:
        raise ConfigError("blut tui needs the textual package, which is not installed",
                          hint="pip install textual") from None
    if check:
        import asyncio

        from blut_plugins.tui.check import check as check_views

        results = asyncio.run(check_views(app))
        for view, ok, text in results:
            first = next((ln.strip() for ln in text.splitlines()[3:] if ln.strip()), "")
            click.echo(f"{view:<8} {'ok' if ok else 'BLANK'}  {first[:90]}")
        ctx.exit(0 if all(ok for _, ok, _ in results) else 1)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError("blut tui needs a terminal (stdin and stdout are not one)",
                          hint="run it in a terminal, or `blut tui --check` to draw it headless")
    from blut_plugins.tui.app import Cockpit

    Cockpit(app, refresh=refresh, run=run_id).run()


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield tui_command
