"""A recipe's ``build()`` raising on the params it was given: one line naming the recipe and
every param, exit 2, no run made; ``-v`` shows where it failed."""

from __future__ import annotations

from pathlib import Path

from blut_core import App
from tests.support.badbook import Cli, assert_one_line, badbook_blut, no_run_made


def test_a_recipe_failing_on_its_params_names_the_recipe_and_the_param(app: App, cli: Cli,
                                                                       blut_home: Path) -> None:
    code, _, err = cli(app, "run", "badbook:lookup", "-p", "what=ünïcödé")
    assert code == 2
    assert_one_line(err, "recipe badbook:lookup", "what='ünïcödé'", "KeyError: 'ünïcödé'",
                    hint="check the value of what")
    # an error that repeats no value names every param given
    code, _, err = cli(app, "plan", "lookup", "-p", "n=0", "-p", "what=sum")
    assert code == 2
    assert_one_line(err, "recipe badbook:lookup", "n=0", "what='sum'", "ZeroDivisionError")
    # a build that returns something else than a plan says so
    code, _, err = cli(app, "plan", "not-a-plan")
    assert code == 2 and "build() returned str, not a Plan" in err
    no_run_made(blut_home)


def test_verbose_shows_where_the_recipe_failed(app: App, cli: Cli) -> None:
    code, _, err = cli(app, "-v", "run", "badbook:lookup", "-p", "what=x")
    assert code == 2 and "Traceback" in err and "in lookup" in err and "_TABLE[p.what]" in err


def test_the_console_script_reports_the_unicode_param(tmp_path: Path) -> None:
    r = badbook_blut(tmp_path, tmp_path / "home", timeout=120)("run", "badbook:lookup", "-p", "what=ünïcödé")
    assert r.returncode == 2
    assert_one_line(r.stderr, "recipe badbook:lookup", "what='ünïcödé'")
    no_run_made(tmp_path / "home")
