"""Commands registered with ``lazy_command``: their module is imported only when they are
used, listed or all asked for; one that cannot be imported is a one-line error naming its
plugin when run, and is left out (its plugin marked failed) when every command is listed."""

from __future__ import annotations

import sys
from importlib import metadata as md
from pathlib import Path

import click
import pytest

from blut_core import App, PluginError, Settings
from blut_core.cli.root import run
from blut_core.host.manager import make_plugin_manager
from blut_core.testing import builtin_entry_points

REGISTERS = '''
from blut_core import hookimpl
from blut_core.cli import lazy_command


@hookimpl
def blut_commands():
    yield lazy_command("hello", "lazyhello_impl:hello")
    yield lazy_command("broken", "lazyhello_missing:nothing")
    yield lazy_command("misnamed", "lazyhello_impl:hello")
'''

DEFINES = '''
import click


@click.command(name="hello")
def hello() -> None:
    """Say hello."""
    click.echo("hello from a lazy command")
'''


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    (tmp_path / "lazyhello.py").write_text(REGISTERS)
    (tmp_path / "lazyhello_impl.py").write_text(DEFINES)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("lazyhello", "lazyhello_impl"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    eps = [*builtin_entry_points(), md.EntryPoint(name="lazyhello", value="lazyhello",
                                                  group="blut.plugins")]
    pm = make_plugin_manager(entry_points=eps, cookbook_entry_points=())
    return App(pm, Settings.from_environ({"BLUT_HOME": str(tmp_path / "home")}))


def _blut(app: App, *args: str) -> int:
    with pytest.raises(SystemExit) as done:
        run(list(args), app)
    return int(done.value.code or 0)


def test_the_module_is_imported_when_the_command_runs(app: App, capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert "hello" in app.registry.command_names and "lazyhello_impl" not in sys.modules
    assert _blut(app, "config", "show") == 0       # another command: the module stays out
    assert "lazyhello_impl" not in sys.modules
    capsys.readouterr()
    assert _blut(app, "hello") == 0
    assert capsys.readouterr().out == "hello from a lazy command\n"


def test_listing_every_command_imports_them_and_leaves_out_what_fails(app: App) -> None:
    commands = app.registry.commands
    assert isinstance(commands["hello"].item, click.Command)
    assert commands["hello"].item.help == "Say hello."
    assert "broken" not in commands and "misnamed" not in commands
    record = app.pm.record("lazyhello")
    assert record is not None and record.state == "failed"
    assert "'broken' failed to load: ModuleNotFoundError" in (record.error or "")
    assert "is the command 'hello', not 'misnamed'" in (record.error or "")


def test_help_lists_a_lazy_command_with_its_own_help(app: App,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _blut(app, "hello", "--help") == 0
    assert "Say hello." in capsys.readouterr().out
    assert _blut(app, "--help") == 0
    listed = capsys.readouterr().out
    assert "hello" in listed and "Say hello." in listed and "broken" not in listed


def test_a_command_whose_module_is_missing_is_a_one_line_error(
        app: App, capsys: pytest.CaptureFixture[str]) -> None:
    assert _blut(app, "broken") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Error: lazyhello (") and "'broken' failed to load" in err[0]
    assert "lazyhello_missing" in err[0] and "Traceback" not in "\n".join(err)
    with pytest.raises(PluginError, match="misnamed"):
        app.registry.command("misnamed")
