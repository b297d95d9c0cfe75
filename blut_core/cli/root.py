"""The ``blut`` command: a click group whose sub-commands come from ``blut_commands``.

Results go to stdout; logs, warnings and errors to stderr. Errors a user can fix are one
line plus a hint, with exit code 2 for bad input (see :mod:`blut_core.errors`); ``-v`` adds
the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from blut_core.errors import BlutError
from blut_core.host.app import App
from blut_core.host.log import configure_logging


class PluginGroup(click.Group):
    """Root group; sub-commands come from the registry's ``blut_commands`` records."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_app(ctx).registry.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        provided = _app(ctx).registry.commands.get(cmd_name)
        return None if provided is None else provided.item


def _app(ctx: click.Context) -> App:
    app = ctx.find_root().obj
    if not isinstance(app, App):
        raise RuntimeError("invoke the blut CLI through blut_core.cli.root or pass obj=App")
    return app


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from blut_core.host.installinfo import describe_version

    click.echo(f"blut {describe_version()}")
    ctx.exit(0)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print VERSION[+COMMIT[-dirty]] and exit.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug); tracebacks.")
@click.option("--log-format", type=click.Choice(["auto", "console", "json"]), default="auto",
              envvar="BLUT_LOG_FORMAT", show_default=True, help="How log lines on stderr look.")
def cli(verbose: int, log_format: str) -> None:
    """blut: run a pipeline's stages without ever letting the machine run out of memory."""
    configure_logging(level="debug" if verbose > 1 else "info" if verbose else "warning",
                      fmt=log_format)


def _verbosity(args: Sequence[str]) -> int:
    n = 0
    for a in args:
        if a == "--":
            break
        if a == "--verbose":
            n += 1
        elif a.startswith("-") and not a.startswith("--") and set(a[1:]) == {"v"}:
            n += len(a) - 1
    return n


def _log_format(args: Sequence[str]) -> str:
    for i, a in enumerate(args):
        if a == "--":
            break
        if a.startswith("--log-format="):
            return a.split("=", 1)[1]
        if a == "--log-format" and i + 1 < len(args):
            return args[i + 1]
    return os.environ.get("BLUT_LOG_FORMAT", "auto")


def main(argv: Sequence[str] | None = None, app: App | None = None) -> None:
    """Console-script entry point: ``blut = "blut_core.cli:main"``."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = _verbosity(args)
    # Plugins may log while they load, before click has read the options: apply them now.
    configure_logging(level="debug" if verbose > 1 else "info" if verbose else "warning",
                      fmt=_log_format(args))
    try:
        if os.environ.get("BLUT_NO_STALE_CHECK") != "1":
            from blut_core.host.installinfo import stale_warning

            warning = stale_warning()
            if warning:
                click.echo(f"blut: {warning}", err=True)
        if args in (["--version"], ["-V"]):  # answer before loading any plugin
            from blut_core.host.installinfo import describe_version

            click.echo(f"blut {describe_version()}")
            raise SystemExit(0)
        app = app or App.from_environment()
        result: Any = cli.main(args=args, obj=app, prog_name="blut", standalone_mode=False)
    except BlutError as err:
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(err.render(), err=True)
        raise SystemExit(err.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    except (click.Abort, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        raise SystemExit(130) from None
    raise SystemExit(result if isinstance(result, int) else 0)
