"""Bad input and a bad machine: one line and a hint, the documented exit code, no traceback,
and nothing half-made left behind (item 1 of the reliability report, case by case).

- a recipe's ``build()`` raising on the params it was given;
- params files nested 100,000 deep, binary, or not UTF-8; ``-p`` values nested as deep;
- ``BLUT_HOME`` and ``BLUT_LEDGER`` at a regular file, at a directory where a file belongs,
  or at a place that cannot be written, all refused before a run directory exists;
- ``--deadline nan|inf|-inf|-1|0``;
- click's own usage errors, in the same Error/Hint form, with "did you mean";
- a full disk under the run directory, the ledger, calibration, the lineage database and
  the cache (a small tmpfs mounted by the test; skipped, saying why, when not root).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from importlib import metadata as md
from pathlib import Path

import attrs
import pytest

from blut_core import App, CookbookSpec, Plan, Recipe, Settings, Stage, hookimpl
from blut_core.broker.calibration import CalibrationKey, CalibrationStore
from blut_core.broker.ledger import Ledger
from blut_core.cli import main
from blut_core.errors import DiskFull
from blut_core.host.log import configure_logging
from blut_core.host.manager import BlutPluginManager
from blut_core.lineage import extract_run
from blut_core.store.cache import Cache
from blut_core.store.rundir import StatusLog, write_json_atomic
from blut_core.testing import COOKBOOK_GROUP, installed_distribution
from tests.core.conftest import TESTBOOK
from tests.support.cli import ROOT, blut_argv

BADBOOK = md.EntryPoint(name="badbook", value="tests.core.test_bad_input", group=COOKBOOK_GROUP)


# -- a cookbook whose recipes fail on their params, and one that fills its disk -----------


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


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, BADBOOK]


# -- helpers ------------------------------------------------------------------------------


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``blut ARGV`` in-process against ``app``: (exit code, stdout, stderr)."""
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")  # an install older than the tree says so

    def _cli(app: App, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(argv), app=app)
        out, err = capsys.readouterr()
        code = info.value.code
        return (code if isinstance(code, int) else 1), out, err

    return _cli


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


def _app_at(plugin_manager: BlutPluginManager, home: Path) -> App:
    return App(plugin_manager, Settings.from_environ({"BLUT_HOME": str(home)}))


# -- a recipe's build() raising ------------------------------------------------------------


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
    site = installed_distribution(tmp_path / "site", "blut-badbook", "0",
                                  {"blut.cookbooks": {"badbook": BADBOOK.value}})
    env = {**os.environ, "BLUT_HOME": str(tmp_path / "home"), "BLUT_NO_STALE_CHECK": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    r = subprocess.run([*blut_argv(), "run", "badbook:lookup", "-p", "what=ünïcödé"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert_one_line(r.stderr, "recipe badbook:lookup", "what='ünïcödé'")
    no_run_made(tmp_path / "home")


# -- params files and -p values -----------------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize(("name", "content", "message"), [
    ("deep-array.json", "[" * DEEP + "]" * DEEP, "nested more than 64 levels deep"),
    ("deep-object.json", '{"a":' * DEEP + "1" + "}" * DEEP, "nested more than 64 levels deep"),
    ("deep-array.toml", "a = " + "[" * DEEP + "]" * DEEP, "nested more than 64 levels deep"),
    ("deep-table.toml", "a = " + "{b = " * DEEP + "1" + "}" * DEEP, "nested more than 64 levels deep"),
    ("deep-shallow.json", '{"n":' * 70 + "1" + "}" * 70, "nested more than 64 levels deep"),
    ("binary.json", bytes(range(256)), "is binary (a NUL byte at offset 0)"),
    ("binary.toml", b"n = 1\n\x00\x01\x02", "is binary (a NUL byte at offset 6)"),
    ("utf16.toml", "n = 1\n".encode("utf-16"), "is binary"),
    ("latin1.toml", "what = 'ünï'\n".encode("latin-1"), "line 1: not UTF-8 text (byte 0xfc at offset 8)"),
    ("latin1.json", '{\n"what": "ü"}'.encode("latin-1"), "line 2: not UTF-8 text (byte 0xfc"),
    ("huge-int.json", '{"n": ' + "9" * 5000 + "}", "Exceeds the limit"),
    ("list.json", "[1, 2]", "the top level must be a table/object"),
])
def test_params_files_that_are_not_params(app: App, cli: Cli, blut_home: Path, tmp_path: Path,
                                          name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for command in ("run", "plan"):
        code, _, err = cli(app, command, "badbook:lookup", "--params", str(path))
        assert code == 2
        assert_one_line(err, f"params file {path}", message)
    no_run_made(blut_home)


def test_a_byte_order_mark_is_fine(app: App, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfwhat = 'sum'\n")
    code, out, err = cli(app, "plan", "badbook:lookup", "--params", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["stages"]


@pytest.mark.parametrize(("override", "message"), [
    ("what=" + "[" * DEEP + "]" * DEEP, None),        # not JSON that Python can read: a string
    ("what=" + "[" * 70 + "]" * 70, "bad -p value for 'what': nested more than 64 levels deep"),
    ("." .join(["a"] * 100) + "=1", "levels deep, more than the 64 params may nest"),
    ("a." * 63 + "b=[[1]]", "nested more than 64 levels deep"),
])
def test_deep_p_values(app: App, cli: Cli, override: str, message: str | None) -> None:
    code, _, err = cli(app, "plan", "badbook:lookup", "-p", override)
    assert code == 2
    if message is None:  # a string where a lookup key belongs: the recipe's KeyError, named
        assert_one_line(err, "recipe badbook:lookup", "what='[[[[")
    else:
        assert_one_line(err, message)


# -- BLUT_HOME and BLUT_LEDGER where they cannot be --------------------------------------


def test_blut_home_that_is_a_file_or_holds_a_file_where_a_directory_belongs(
        plugin_manager: BlutPluginManager, cli: Cli, tmp_path: Path) -> None:
    regular = tmp_path / "regular"
    regular.write_text("not a directory")
    code, _, err = cli(_app_at(plugin_manager, regular), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"BLUT_HOME {regular} is not writable: it is a file, not a directory")
    code, _, err = cli(_app_at(plugin_manager, regular / "sub"), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"{regular} is a file, not a directory")
    for name in ("runs", "cache"):
        home = tmp_path / f"home-{name}"
        home.mkdir()
        (home / name).write_text("")
        code, _, err = cli(_app_at(plugin_manager, home), "run", "diamond")
        assert code == 2
        assert_one_line(err, f"{home / name} is not writable: it is a file, not a directory")
    assert regular.read_text() == "not a directory"


def test_blut_home_with_a_directory_where_the_calibration_file_belongs(
        plugin_manager: BlutPluginManager, cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "calibration.json").mkdir(parents=True)
    app = _app_at(plugin_manager, home)
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


# -- small file systems, mounted by the test (root only) -----------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``small_fs(name, size="1m", ro=False)``: a tmpfs mounted at ``tmp_path/name``."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only tmpfs needs root")
    mounted: list[Path] = []

    def _mount(name: str, size: str = "1m", ro: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield _mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


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


def test_read_only_places(plugin_manager: BlutPluginManager, app: App, cli: Cli, blut_home: Path,
                          small_fs: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ro = small_fs("ro", ro=True)
    code, _, err = cli(_app_at(plugin_manager, ro / "home"), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"BLUT_HOME {ro / 'home'} is not writable: Read-only file system")
    monkeypatch.setenv("BLUT_LEDGER", str(ro / "ledger.json"))
    code, _, err = cli(app, "run", "diamond")
    assert code == 2
    assert_one_line(err, "booking ledger", str(ro), "Read-only file system", hint="BLUT_LEDGER")
    no_run_made(blut_home)


def _no_leftovers(home: Path) -> None:
    """Nothing half-written: no temporary file or directory anywhere under ``home``."""
    left = [p for p in home.rglob("*") if (p.name.endswith(".tmp") and p.name != "out.tmp")
            or p.name.startswith(".lineage-rebuild-") or p.name.startswith(".write-test-")]
    assert left == [], left


def test_a_full_disk_before_the_run_refuses_it_whole(plugin_manager: BlutPluginManager, cli: Cli,
                                                     small_fs: Callable[..., Path]) -> None:
    fs = small_fs("home")
    fill_up(fs)
    code, _, err = cli(_app_at(plugin_manager, fs), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"no space left for a new run's set-up in {fs / 'runs'}", "it needs ",
                    f"0 B free on {fs}", hint=f"df -h {fs}")
    no_run_made(fs)
    _no_leftovers(fs)


def test_a_full_ledger_disk_refuses_the_run_before_it_starts(app: App, cli: Cli, blut_home: Path,
                                                             small_fs: Callable[..., Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fs = small_fs("ledger")
    fill_up(fs)
    monkeypatch.setenv("BLUT_LEDGER", str(fs / "ledger.json"))
    code, _, err = cli(app, "run", "diamond")
    assert code == 2
    assert_one_line(err, f"no space left for the booking ledger in {fs}")
    no_run_made(blut_home)


def _badbook_blut(tmp_path: Path, home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The console script with this module's cookbook installed, ``BLUT_HOME`` at ``home``."""
    site = installed_distribution(tmp_path / "site", "blut-badbook", "0",
                                  {"blut.cookbooks": {"badbook": BADBOOK.value}})
    env = {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*blut_argv(), *argv], capture_output=True, text=True, env=env,
                              timeout=300)

    return run


def test_a_disk_that_fills_up_mid_run_stops_it_in_one_line_and_resume_finishes_it(
        tmp_path: Path, small_fs: Callable[..., Path]) -> None:
    fs = small_fs("home")
    blut = _badbook_blut(tmp_path, fs)
    r = blut("run", "badbook:fill", "--no-progress")
    assert r.returncode == 2, r.stderr
    [run_dir] = list((fs / "runs").iterdir())
    assert_one_line(r.stderr, "no space left to write ", str(run_dir), f"0 B free on {fs}",
                    hint=f"then `blut resume {run_dir.name}` continues the run")
    _no_leftovers(fs)
    for line in (run_dir / "status.jsonl").read_bytes().splitlines():  # no torn line
        assert isinstance(json.loads(line), dict), line
    (run_dir / "stages" / "fill" / "out" / "fill").unlink()  # free the space again
    r = blut("runs", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert [(x["run_id"], x["state"]) for x in json.loads(r.stdout)] == [(run_dir.name, "interrupted")]
    r = blut("resume", run_dir.name, "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outcome"] == "ok"
    r = blut("lineage", "reindex")
    assert r.returncode == 0, r.stderr
    _no_leftovers(fs)


def test_status_log_on_a_full_disk_keeps_every_line_whole(small_fs: Callable[..., Path]) -> None:
    fs = small_fs("status")
    log = StatusLog(fs / "status.jsonl")
    log.append("first", pad="x" * 4000)  # the file's first page is nearly used up
    size = (fs / "status.jsonl").stat().st_size
    fill_up(fs)
    with pytest.raises(DiskFull) as info:
        log.append("second", pad="y" * 2000)  # starts in that page, cannot end in a new one
    log.close()
    assert info.value.path == str(fs / "status.jsonl") and info.value.needed and info.value.needed > 2000
    assert (fs / "status.jsonl").stat().st_size == size
    assert [json.loads(ln)["event"] for ln in (fs / "status.jsonl").read_bytes().splitlines()] == ["first"]


def test_a_status_batch_on_a_full_disk_leaves_the_stream_as_it_was(
        small_fs: Callable[..., Path]) -> None:
    fs = small_fs("batch")
    log = StatusLog(fs / "status.jsonl")
    log.append("first", pad="x" * 4000)
    size = (fs / "status.jsonl").stat().st_size
    fill_up(fs)
    with pytest.raises(DiskFull) as info, log.batch():
        log.append("second", pad="y" * 100)
        log.append("third", pad="z" * 2000)  # together they cannot end in a new page
    log.close()
    assert info.value.path == str(fs / "status.jsonl") and info.value.needed and info.value.needed > 2100
    assert (fs / "status.jsonl").stat().st_size == size
    assert [json.loads(ln)["event"] for ln in (fs / "status.jsonl").read_bytes().splitlines()] == ["first"]


def test_atomic_writes_on_a_full_disk_leave_the_old_file(small_fs: Callable[..., Path]) -> None:
    fs = small_fs("atomic")
    write_json_atomic(fs / "plan.json", {"old": True})
    fill_up(fs)
    with pytest.raises(DiskFull) as info:
        write_json_atomic(fs / "plan.json", {"new": "x" * 100_000})
    assert "no space left to write" in info.value.message and str(fs / "plan.json") in info.value.message
    assert "it needs 97.7 KiB" in info.value.message
    assert json.loads((fs / "plan.json").read_text()) == {"old": True}
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "plan.json"]


def test_ledger_on_a_full_disk_is_never_torn(small_fs: Callable[..., Path]) -> None:
    fs = small_fs("ledger")
    ledger = Ledger(fs / "ledger.json")
    with ledger.transaction() as txn:
        first = txn.book(1 << 20, "first")
    fill_up(fs)
    with pytest.raises(DiskFull) as info, ledger.transaction() as txn:
        for i in range(200):  # the document outgrows the page it has
            txn.book(1 << 20, f"stage-{i:03d}-" + "x" * 40)
    assert str(fs / "ledger.json") in info.value.message
    assert [b.id for b in ledger.bookings()] == [first.id]
    assert not [p for p in fs.iterdir() if p.name.endswith(".tmp")]


def _warnings(capsys: pytest.CaptureFixture[str], event: str) -> list[dict[str, object]]:
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    return [e for e in lines if e.get("event") == event]


def test_calibration_on_a_full_disk_warns_and_keeps_the_old_store(
        small_fs: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="warning", fmt="json")  # to this test's stderr
    fs = small_fs("calibration")
    store = CalibrationStore(fs / "calibration.json")
    store.record_peak(CalibrationKey.of("r", "first", {}), 1 << 20, 2 << 20)
    before = (fs / "calibration.json").read_bytes()
    fill_up(fs)
    for i in range(50):
        store.record_peak(CalibrationKey.of("r", f"stage-{i}", {"workers": i}), 1 << 20, 2 << 20)
    warnings = _warnings(capsys, "calibration_not_saved")
    assert len(warnings) == 50
    warning = warnings[0]
    assert warning["path"] == str(fs / "calibration.json") and warning["free_bytes"] == 0
    # a flush needs the bytes of what it learnt (its journal line), not of the whole store
    assert 100 < int(warning["needed_bytes"]) < 400  # type: ignore[call-overload]
    assert (fs / "calibration.json").read_bytes() == before
    assert sorted(p.name for p in fs.iterdir()) == ["calibration.json", "calibration.json.lock",
                                                    "filler"]
    (fs / "filler").unlink()  # room again: the next record is saved, what was lost stays lost
    store.record_peak(CalibrationKey.of("r", "later", {}), 3 << 20, 4 << 20)
    again = CalibrationStore(fs / "calibration.json")
    assert again.get(CalibrationKey.of("r", "later", {})).peak == 3 << 20  # type: ignore[union-attr]
    assert again.get(CalibrationKey.of("r", "first", {})).peak == 1 << 20  # type: ignore[union-attr]
    assert again.get(CalibrationKey.of("r", "stage-0", {"workers": 0})) is None


def test_cache_on_a_full_disk_stores_nothing_half(small_fs: Callable[..., Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="warning", fmt="json")
    fs = small_fs("full")
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin").write_bytes(os.urandom(64 << 10))
    fill_up(fs)
    cache = Cache(fs / "cache")
    entry = cache.store("ab" * 32, "s", out)
    [warning] = _warnings(capsys, "cache_not_stored")
    assert warning["free_bytes"] == 0 and warning["needed_bytes"] > 64 << 10  # type: ignore[operator]
    assert entry.output_hash  # the stage still has its output's hash
    assert cache.lookup("ab" * 32) is None  # a miss, not a damaged entry
    assert [p for p in (fs / "cache").rglob("*") if p.is_file()] == []
    dest = fs / "dest"
    stored = Cache(tmp_path / "other-cache").store("cd" * 32, "s", out)
    with pytest.raises(DiskFull) as info:
        Cache(tmp_path / "other-cache").materialize(stored, dest)  # copies across file systems
    assert str(dest) in info.value.message
    assert sorted(p.name for p in fs.iterdir()) == ["cache", "filler"]


def test_lineage_on_a_full_disk_leaves_no_half_made_database(
        plugin_manager: BlutPluginManager, cli: Cli, small_fs: Callable[..., Path]) -> None:
    from blut_plugins.duckdb import DuckDBLineage

    fs = small_fs("home", size="4m")
    app = _app_at(plugin_manager, fs)
    assert cli(app, "run", "diamond", "--no-progress")[0] == 0
    for name in ("lineage.duckdb", "lineage.duckdb.wal"):
        (fs / name).unlink(missing_ok=True)
    [run_dir] = list((fs / "runs").iterdir())
    filler = fill_up(fs)
    with pytest.raises(Exception, match="No space left on device"):
        DuckDBLineage(fs).ingest(extract_run(run_dir))
    assert not (fs / "lineage.duckdb").exists() and not (fs / "lineage.duckdb.wal").exists()
    code, out, err = cli(app, "runs", "list", "--json")  # from the run directories
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [run_dir.name], err
    code, _, err = cli(app, "lineage", "reindex")
    assert code == 2
    assert_one_line(err, "no space left to write", str(fs))
    _no_leftovers(fs)
    filler.unlink()
    assert cli(app, "lineage", "reindex")[0] == 0
    # a database that exists keeps what it had when a later ingest finds the disk full
    assert cli(app, "run", "diamond", "--no-progress", "--no-cache")[0] == 0
    newest = max((fs / "runs").iterdir(), key=lambda p: p.name)
    fill_up(fs)
    with pytest.raises(Exception, match="No space left on device"):
        DuckDBLineage(fs).ingest(extract_run(newest))
    with DuckDBLineage(fs).reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] >= 1


# -- --deadline and click's own errors -----------------------------------------------------


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


def test_an_environment_error_with_no_file_name_names_blut_home(tmp_path: Path) -> None:
    from blut_core.cli.root import environment_error

    err = environment_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(err, DiskFull) and str(tmp_path) in err.message
    assert environment_error(OSError(errno.EROFS, "Read-only file system", "/x"), tmp_path) is not None
    assert environment_error(OSError(errno.ENOENT, "No such file", "/x"), tmp_path) is None


def test_a_full_disk_names_the_run_to_resume_only_for_a_run(app: App) -> None:
    from blut_core.cli.root import _resume_hint

    runs = app.settings.runs_dir
    in_run = DiskFull(runs / "20261201-000000-x-abcdef" / "status.jsonl", needed=10)
    assert "`blut resume 20261201-000000-x-abcdef` continues the run" in (_resume_hint(in_run, app) or "")
    for path in (runs / ".setup" / "r" / "plan.json", runs, app.settings.home / "calibration.json"):
        err = DiskFull(path, needed=10)
        assert _resume_hint(err, app) == err.hint and "resume" not in (err.hint or "")
