"""A plugin or cookbook that fails is skipped, listed with its error, and hides nothing else."""

from __future__ import annotations

import json
from importlib import metadata as md
from pathlib import Path

import pytest

from blut_core import App, PluginError, Settings
from blut_core.host import make_plugin_manager
from blut_core.testing import COOKBOOK_GROUP, builtin_entry_points, installed_distribution
from tests.support.cli import run_blut


def _book(name: str, obj: str) -> md.EntryPoint:
    return md.EntryPoint(name=name, value=f"tests.support.books:{obj}", group=COOKBOOK_GROUP)


def _plugin(name: str, obj: str) -> md.EntryPoint:
    return md.EntryPoint(name=name, value=f"tests.support.plugins:{obj}", group="blut.plugins")


BOOKS = [_book("good", "good"), _book("raising", "raising"), _book("wrongtype", "wrongtype"),
         _book("dup", "duplicate"), _book("nospec", "nospec"),
         md.EntryPoint(name="gone", value="no_such_cookbook_module", group=COOKBOOK_GROUP)]


def _app(tmp_path: Path, *, books: list[md.EntryPoint], plugins: tuple[md.EntryPoint, ...] = (),
         strict: bool = False) -> App:
    pm = make_plugin_manager(entry_points=[*builtin_entry_points(), *plugins],
                             cookbook_entry_points=books, strict=strict)
    return App(pm, Settings.from_environ({"BLUT_HOME": str(tmp_path)}))


def test_each_broken_cookbook_is_skipped_with_its_error_and_the_good_one_works(tmp_path: Path) -> None:
    app = _app(tmp_path, books=BOOKS)
    index = app.cookbooks
    assert list(index.recipes) == ["dup:twice", "good:one"]
    assert index.recipes["dup:twice"].recipe.summary == "first"
    errors = {r.name: r.error or "" for r in app.pm.records if r.kind == "cookbook"}
    assert errors["good"] == ""
    assert "blut_recipes raised KeyError" in errors["raising"]
    assert "yielded a str, not a Recipe" in errors["wrongtype"]
    assert "'dup:twice' is registered twice" in errors["dup"]
    assert "declares no cookbook" in errors["nospec"]
    assert "no_such_cookbook_module" in errors["gone"]
    assert {r.name for r in index.failed} == {"raising", "wrongtype", "dup", "nospec", "gone"}



def test_a_recipe_by_its_full_name_asks_only_its_cookbook(tmp_path: Path) -> None:
    """``blut run good:one`` never runs the other cookbooks' ``blut_recipes`` (nor imports what
    their recipes need); listing the recipes (and ``plugins list``) asks every one."""
    app = _app(tmp_path, books=BOOKS)
    assert app.cookbooks.find("good:one").qualname == "good:one"
    errors = {r.name: r.error for r in app.cookbooks.records}
    assert errors["raising"] is None and errors["wrongtype"] is None     # not asked
    assert "no_such_cookbook_module" in (errors["gone"] or "")           # failed to import at load
    assert list(app.cookbooks.recipes) == ["dup:twice", "good:one"]       # now every one is asked
    assert {r.name for r in app.cookbooks.failed} == {"raising", "wrongtype", "dup", "nospec", "gone"}
    assert app.cookbooks.find("one").qualname == "good:one"                # a bare name: all asked

def test_a_cookbook_may_implement_other_hooks(tmp_path: Path) -> None:
    app = _app(tmp_path, books=[_book("good", "good")])
    assert app.registry.footprint_models["per-row"].plugin == "good"
    model = app.registry.require("footprint_models", "per-row").factory()
    assert model.estimate({}, {"rows": 2}) == (1 << 20) + 2048


def test_strict_mode_makes_a_broken_cookbook_fatal(tmp_path: Path) -> None:
    app = _app(tmp_path, books=[_book("good", "good"), _book("raising", "raising")], strict=True)
    with pytest.raises(PluginError, match=r"raising .*blut_recipes raised KeyError"):
        _ = app.cookbooks


def test_unknown_recipe_names_the_failed_cookbooks(tmp_path: Path) -> None:
    from blut_core import ConfigError

    app = _app(tmp_path, books=[_book("good", "good"), _book("raising", "raising")])
    with pytest.raises(ConfigError) as err:
        app.cookbooks.find("raising:whatever")
    assert "cookbook(s) failed: raising" in (err.value.hint or "")


def test_a_raising_decision_or_lifecycle_hook_is_skipped(tmp_path: Path) -> None:
    app = _app(tmp_path, books=[], plugins=(_plugin("bad-metrics", "raising_metrics"),
                                            _plugin("bad-configure", "raising_configure")))
    from blut_core import RunInfo, Stage

    run = RunInfo(run_id="r", recipe="x", run_dir=tmp_path, launcher="local", stages=("s",))
    stage = Stage.command("s", ["true"])
    assert app.hooks.stage_metrics(run, stage, 1, {"loss": float("nan")}) == "prune"
    assert app.hooks.stage_metrics(run, stage, 1, {"loss": 1.0}) == "continue"
    states = {r.name: r.state for r in app.pm.records}
    assert states["bad-metrics"] == "failed" and states["bad-configure"] == "failed"


def _site(tmp_path: Path) -> Path:
    root = Path(__file__).resolve().parents[2]
    site = installed_distribution(tmp_path / "site", "blut-broken-bits", "1.0", {
        "blut.plugins": {"bad-commands": "tests.support.plugins:raising_commands"},
        "blut.cookbooks": {"good": "tests.support.books:good", "raising": "tests.support.books:raising"}})
    (site / "root.pth").write_text(str(root) + "\n")
    return site


def test_a_raising_commands_hook_leaves_every_command_working(tmp_path: Path) -> None:
    site = _site(tmp_path)
    help_ = run_blut("--help", home=tmp_path / "h", tmp=tmp_path, PYTHONPATH=str(site))
    assert help_.returncode == 0 and "recipes" in help_.stdout, help_.stderr
    listed = run_blut("plugins", "list", "--json", home=tmp_path / "h", tmp=tmp_path,
                      PYTHONPATH=str(site))
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["bad-commands"]["state"] == "failed"
    assert "blut_commands raised RuntimeError: commands exploded" in rows["bad-commands"]["error"]
    assert rows["raising"]["kind"] == "cookbook" and rows["raising"]["state"] == "failed"
    assert rows["good"]["state"] == "ok"


def test_recipes_list_says_which_cookbook_is_missing_on_stderr(tmp_path: Path) -> None:
    site = _site(tmp_path)
    r = run_blut("recipes", "list", home=tmp_path / "h", tmp=tmp_path, PYTHONPATH=str(site))
    assert r.returncode == 0, r.stderr
    assert "good:one" in r.stdout and "raising" not in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if "raising" in ln]
    assert len(lines) == 1, r.stderr
    assert "cookbook 'raising' (blut-broken-bits 1.0)" in lines[0]
    assert "blut_recipes raised KeyError" in lines[0] and "blut plugins list" in lines[0]
