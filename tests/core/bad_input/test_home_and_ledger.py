"""``BLUT_HOME`` and ``BLUT_LEDGER`` at a regular file, at a directory where a file belongs, or at
a place that cannot be written (a read-only tmpfs mounted by the test): all refused in one line
before a run directory exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from blut_core import App
from blut_core.host.manager import BlutPluginManager
from tests.support.badbook import Cli, app_at, assert_one_line, no_run_made


def test_blut_home_that_is_a_file_or_holds_a_file_where_a_directory_belongs(
        plugin_manager: BlutPluginManager, cli: Cli, tmp_path: Path) -> None:
    regular = tmp_path / "regular"
    regular.write_text("not a directory")
    code, _, err = cli(app_at(plugin_manager, regular), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"BLUT_HOME {regular} is not writable: it is a file, not a directory")
    code, _, err = cli(app_at(plugin_manager, regular / "sub"), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"{regular} is a file, not a directory")
    for name in ("runs", "cache"):
        home = tmp_path / f"home-{name}"
        home.mkdir()
        (home / name).write_text("")
        code, _, err = cli(app_at(plugin_manager, home), "run", "diamond")
        assert code == 2
        assert_one_line(err, f"{home / name} is not writable: it is a file, not a directory")
    assert regular.read_text() == "not a directory"


def test_blut_home_with_a_directory_where_the_calibration_file_belongs(
        plugin_manager: BlutPluginManager, cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "calibration.json").mkdir(parents=True)
    app = app_at(plugin_manager, home)
    code, _, err = cli(app, "run", "diamond")
    assert code == 2
    assert_one_line(err, f"calibration store {home / 'calibration.json'} is a directory",
                    hint="--no-calibration")
    no_run_made(home)
    code, _, err = cli(app, "run", "diamond", "--no-calibration")  # the hint works
    assert code == 0, err


@pytest.mark.parametrize("where", ["a foreign file", "a directory", "under a file", "its lock a directory"])
def test_blut_ledger_where_no_ledger_can_be(app: App, cli: Cli, blut_home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    regular = tmp_path / "passwd"
    regular.write_text("root:x:0:0:root:/root:/bin/bash\n")
    ledger = {"a foreign file": regular, "a directory": tmp_path / "dir",
              "under a file": regular / "ledger.json",
              "its lock a directory": tmp_path / "l.json"}[where]
    (tmp_path / "dir").mkdir()
    (tmp_path / "l.json.lock").mkdir()
    monkeypatch.setenv("BLUT_LEDGER", str(ledger))
    code, _, err = cli(app, "run", "diamond")
    assert code == 2
    message = {"a foreign file": "holds something else than a blut ledger",
               "a directory": "is a directory; it must name a file",
               "under a file": f"its directory {regular} is not writable: it is a file",
               "its lock a directory": "lock"}[where]
    assert_one_line(err, "booking ledger", str(ledger), message, hint="BLUT_LEDGER")
    assert regular.read_text() == "root:x:0:0:root:/root:/bin/bash\n"  # never overwritten
    no_run_made(blut_home)


def test_resume_checks_the_same_places_before_it_touches_the_run(
        app: App, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dir").mkdir()
    monkeypatch.setenv("BLUT_LEDGER", str(tmp_path / "dir"))
    code, _, err = cli(app, "resume", "latest")
    assert code == 2
    assert_one_line(err, f"booking ledger {tmp_path / 'dir'} is a directory", hint="BLUT_LEDGER")


def test_read_only_places(plugin_manager: BlutPluginManager, app: App, cli: Cli, blut_home: Path,
                          small_fs: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ro = small_fs("ro", ro=True)
    code, _, err = cli(app_at(plugin_manager, ro / "home"), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"BLUT_HOME {ro / 'home'} is not writable: Read-only file system")
    monkeypatch.setenv("BLUT_LEDGER", str(ro / "ledger.json"))
    code, _, err = cli(app, "run", "diamond")
    assert code == 2
    assert_one_line(err, "booking ledger", str(ro), "Read-only file system", hint="BLUT_LEDGER")
    no_run_made(blut_home)
