"""``--deadline nan|inf|-inf|-1|0`` and click's own usage errors, in the same Error/Hint form,
with "did you mean"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut_core import App
from tests.support.badbook import Cli, assert_one_line, no_run_made


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "0.0",
                                   "1e400", "", "soon", "--verbose", "-vv"])  # a value, not -v
def test_deadline_must_be_positive_and_finite(app: App, cli: Cli, blut_home: Path, value: str) -> None:
    code, _, err = cli(app, "run", "diamond", "--deadline", value)
    assert code == 2
    assert_one_line(err, "invalid value for '--deadline'", repr(value), hint="blut run --help")
    no_run_made(blut_home)


def test_a_good_deadline_still_runs(app: App, cli: Cli) -> None:
    code, out, err = cli(app, "run", "diamond", "--deadline", "120", "--json", "--no-progress")
    assert code == 0 and json.loads(out)["outcome"] == "ok", err


@pytest.mark.parametrize(("argv", "message", "hint"), [
    (["rnu"], "no such command 'rnu'", "did you mean 'run' or 'runs'? (`blut --help` lists the commands)"),
    (["pln", "diamond"], "no such command 'pln'", "did you mean 'plan'"),
    (["xyzzy"], "no such command 'xyzzy'", "`blut --help` lists the commands"),
    (["runs", "lsit"], "no such command 'lsit'", "did you mean 'list'? (`blut runs --help`"),
    (["run", "diamond", "--jobz", "2"], "no such option '--jobz'", "did you mean '--jobs'"),
    (["run", "diamond", "--bogus"], "no such option '--bogus'", "`blut run --help` lists the options"),
    (["run", "diamond", "-p"], "option '-p' requires an argument", "see `blut run --help`"),
    (["run", "diamond", "--params"], "option '--params' requires an argument", "see `blut run --help`"),
    (["run"], "missing argument 'RECIPE'", "see `blut run --help`"),
    (["run", "diamond", "--jobs", "x"], "invalid value for '-j' / '--jobs'", "see `blut run --help`"),
    (["run", "diamond", "--jobs", "0"], "invalid value for '-j' / '--jobs'", "see `blut run --help`"),
    (["--log-format", "xml", "runs", "list"], "invalid value for '--log-format'", "see `blut --help`"),
    (["runs", "show"], "missing argument 'RUN'", "see `blut runs show --help`"),
])
def test_click_usage_errors_are_one_line_with_a_hint(app: App, cli: Cli, argv: list[str],
                                                     message: str, hint: str) -> None:
    code, out, err = cli(app, *argv)
    assert code == 2 and out == ""
    assert_one_line(err, message, hint=hint)
    assert "Usage:" not in err and "Try 'blut" not in err
