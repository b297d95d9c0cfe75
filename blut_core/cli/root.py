"""The ``blut`` command: a click group whose sub-commands come from ``blut_commands``.

Results go to stdout; logs, warnings and errors to stderr. Errors a user can fix are one
line plus a hint, with exit code 2 for bad input (see :mod:`blut_core.errors`); ``-v`` adds
the traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from blut_core.errors import BlutError, ConfigError, DiskFull, mount_point
from blut_core.errors import is_disk_full as errno_full
from blut_core.host.app import App
from blut_core.host.log import configure_logging


class PluginGroup(click.Group):
    """Root group; sub-commands come from the registry's ``blut_commands`` records."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # listing (help, completion) imports every command: one that fails is left out
        return sorted(_app(ctx).registry.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        provided = _app(ctx).registry.command(cmd_name)  # imports that command's module only
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
    """How many ``-v`` the root group was given: its options come before the command's name,
    so a ``-v`` or ``--verbose`` after it is a value or the command's own."""
    n = 0
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--log-format":
            skip = True
        elif a == "--" or not a.startswith("-"):
            break
        elif a == "--verbose":
            n += 1
        elif not a.startswith("--") and set(a[1:]) == {"v"}:
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


def run(args: list[str], app: App | None = None, *, gc_paused: bool = False) -> None:
    """Build the App (unless given), run the command ``args`` name and exit with its code.

    :func:`blut_core.cli.entry.main` calls this once it has answered ``--version`` and given
    the stale-install warning. With ``gc_paused`` (the console script: it disabled the
    cyclic garbage collector before importing anything) the collector is turned back on
    once the App is built, after moving what start-up made (modules, classes, plugins:
    kept until the process ends) where it never looks again (``gc.freeze``): the
    collections start-up would trigger find next to nothing (1 % of the instructions of a
    one-stage ``blut run``).
    """
    verbose = _verbosity(args)
    # Plugins may log while they load, before click has read the options: apply them now.
    configure_logging(level="debug" if verbose > 1 else "info" if verbose else "warning",
                      fmt=_log_format(args))
    try:
        app = app or App.from_environment()
        if gc_paused:
            _resume_gc()
        result: Any = cli.main(args=args, obj=app, prog_name="blut", standalone_mode=False)
    except BlutError as err:
        _fail(err, verbose, app)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.NoArgsIsHelpError as err:  # a bare group: its help, as click does
        err.show()
        raise SystemExit(err.exit_code) from None
    except click.ClickException as err:
        _fail(usage_error(err, args), verbose, app)
    except (click.Abort, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        raise SystemExit(130) from None
    except OSError as exc:
        found = environment_error(exc, app.settings.home if app is not None else Path.cwd())
        if found is None:
            raise  # not something the user's machine did: a bug, with its traceback
        _fail(found, verbose, app)
    raise SystemExit(result if isinstance(result, int) else 0)


def _resume_gc() -> None:
    import gc

    gc.freeze()
    gc.enable()


def _fail(err: BlutError, verbose: int, app: App | None) -> NoReturn:
    """Show ``err`` as its one line and hint (and, with ``-v``, the traceback); exit."""
    if verbose:
        import traceback

        traceback.print_exc()
    if isinstance(err, DiskFull) and app is not None:
        err.hint = _resume_hint(err, app)
    click.echo(err.render(), err=True)
    raise SystemExit(err.exit_code) from None


class UsageProblem(ConfigError):
    """A command line click could not parse (unknown command or option, missing value)."""


def usage_error(err: click.ClickException, args: Sequence[str] = ()) -> BlutError:
    """click's own error as blut's one line and hint: the command's help, and for an
    unknown command or option the closest names ("did you mean")."""
    ctx = getattr(err, "ctx", None)
    path = ctx.command_path if ctx is not None else _command_path(args)
    unknown = isinstance(err, (click.exceptions.NoSuchCommand, click.exceptions.NoSuchOption))
    message = " ".join((err.message if unknown else err.format_message()).split()).rstrip(".")
    names: list[str] = []
    if isinstance(err, click.exceptions.NoSuchCommand) and ctx is not None:
        group = ctx.command
        commands = group.list_commands(ctx) if isinstance(group, click.Group) else []
        import difflib  # only for a mistyped command: not on every start

        names = difflib.get_close_matches(err.command_name, commands, n=3, cutoff=0.5)
        see = f"`{path} --help` lists the commands"
    elif isinstance(err, click.exceptions.NoSuchOption):
        names = list(err.possibilities or ())
        see = f"`{path} --help` lists the options"
    else:
        see = f"see `{path} --help`"
    hint = f"did you mean {' or '.join(repr(n) for n in names)}? ({see})" if names else see
    problem = UsageProblem(message[:1].lower() + message[1:] if message[1:2].islower() else message,
                           hint=hint)
    problem.exit_code = err.exit_code  # type: ignore[misc]
    return problem


def _command_path(args: Sequence[str]) -> str:
    """``blut COMMAND`` for the first word of ``args`` that is not an option (else ``blut``)."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--log-format":
            skip = True
        elif a == "--":
            break
        elif not a.startswith("-"):
            return f"blut {a}"
    return "blut"


def environment_error(exc: OSError, where: Path) -> BlutError | None:
    """An OS error the machine caused (a full disk, a read-only or forbidden place) as a
    one-line error naming the file (``where`` when the error does not say); ``None`` for
    anything else."""
    name = exc.filename
    if errno_full(exc):
        return DiskFull(name if name is not None else where)
    if name is not None and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ConfigError(f"cannot write {name}: {exc.strerror}",
                           hint="check that place's permissions and mount, or set BLUT_HOME "
                                "to a directory you can write to")
    return None


def _resume_hint(err: DiskFull, app: App) -> str | None:
    """For a run stopped by a full disk: free space, then resume that run."""
    try:
        rel = Path(err.path).resolve().relative_to(app.settings.runs_dir.resolve())
    except (ValueError, OSError):
        return err.hint
    if not rel.parts or rel.parts[0].startswith("."):  # not a run (one being set up is removed)
        return err.hint
    mount = mount_point(err.path)
    return (f"free space on {mount} (see `df -h {mount}`), then `blut resume {rel.parts[0]}` "
            "continues the run")
