"""A cookbook whose recipes fail on their params or fill their disk, and the checks the bad-input
tests (tests/core/bad_input/) make of what blut says and leaves behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from importlib import metadata as md
from pathlib import Path

import attrs

from blut_core import App, CookbookSpec, Plan, Recipe, Settings, Stage, hookimpl
from blut_core.host.manager import BlutPluginManager
from blut_core.testing import COOKBOOK_GROUP, installed_distribution
from tests.support.cli import ROOT, blut_argv

BADBOOK = md.EntryPoint(name="badbook", value="tests.support.badbook", group=COOKBOOK_GROUP)

Cli = Callable[..., tuple[int, str, str]]


# -- the cookbook ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class What:
    what: str = "count"
    n: int = 2


_TABLE = {"count": 1, "sum": 2}


def lookup(p: What) -> Plan:
    """A recipe that indexes a table by a param: a KeyError for a value it does not know."""
    per = _TABLE[p.what]
    return Plan.of(Stage.command("s", ["true"], params={"per": per, "n": 10 // p.n}))


def not_a_plan(_: What) -> Plan:
    return "a plan"  # type: ignore[return-value]


@attrs.frozen(kw_only=True)
class Fill:
    after: int = 12


def fill(p: Fill) -> Plan:
    """One stage fills its disk (and succeeds); the stages after it need blut to write."""
    filler = Stage.command("fill", "echo ok > {out}/ok; cat /dev/zero > {out}/fill 2>/dev/null; true",
                           shell=True, cache=False)
    return Plan.of(filler, *(Stage.command(f"after{i}", ["cp", "{inputs[fill]}/ok", "{out}/ok"],
                                           inputs=["fill"]) for i in range(p.after)))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="badbook", summary="Recipes that fail on bad input or a full disk.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="lookup", summary="a table lookup by param", params=What, build=lookup)
    yield Recipe(name="not-a-plan", summary="build returns no Plan", params=What, build=not_a_plan)
    yield Recipe(name="fill", summary="fills the disk mid-run", params=Fill, build=fill)


# -- what the tests check --------------------------------------------------------------------


def assert_one_line(err: str, *in_message: str, hint: str = "") -> None:
    """``Error: …`` (naming what it must) and ``Hint: …``, nothing else, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("{")]
    assert "Traceback" not in err, err
    assert len(lines) == 2, err
    assert lines[0].startswith("Error: "), err
    for text in in_message:
        assert text in lines[0], (text, err)
    assert lines[1].startswith("Hint: ") and hint in lines[1], err


def no_run_made(home: Path) -> None:
    runs = home / "runs"
    assert not runs.exists() or [p.name for p in runs.iterdir()] == [], list(runs.iterdir())


def no_leftovers(home: Path) -> None:
    """Nothing half-written: no temporary file or directory anywhere under ``home``."""
    left = [p for p in home.rglob("*") if (p.name.endswith(".tmp") and p.name != "out.tmp")
            or p.name.startswith(".lineage-rebuild-") or p.name.startswith(".write-test-")]
    assert left == [], left


def app_at(plugin_manager: BlutPluginManager, home: Path) -> App:
    return App(plugin_manager, Settings.from_environ({"BLUT_HOME": str(home)}))


def badbook_blut(tmp_path: Path, home: Path,
                 timeout: float = 300) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The console script with this cookbook installed, ``BLUT_HOME`` at ``home``."""
    site = installed_distribution(tmp_path / "site", "blut-badbook", "0",
                                  {"blut.cookbooks": {"badbook": BADBOOK.value}})
    env = {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*blut_argv(), *argv], capture_output=True, text=True, env=env,
                              timeout=timeout)

    return run


def fill_up(fs: Path, leave: int = 0) -> Path:
    """Fill ``fs`` up (leaving about ``leave`` bytes); returns the filler file."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0"):
                pass
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
