"""A full disk under the run directory, the ledger, calibration, the lineage database and the
cache (a small tmpfs mounted by the test; skipped, saying why, when not root): one line and a
hint, nothing half-made left behind, and resume finishes the run once there is room again."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from blut_core import App
from blut_core.broker.calibration import CalibrationKey, CalibrationStore
from blut_core.broker.ledger import Ledger
from blut_core.errors import DiskFull
from blut_core.host.log import configure_logging
from blut_core.host.manager import BlutPluginManager
from blut_core.lineage import extract_run
from blut_core.store.cache import Cache
from blut_core.store.rundir import StatusLog, write_json_atomic
from tests.support.badbook import (
    Cli,
    app_at,
    assert_one_line,
    badbook_blut,
    fill_up,
    no_leftovers,
    no_run_made,
)


def test_a_full_disk_before_the_run_refuses_it_whole(plugin_manager: BlutPluginManager, cli: Cli,
                                                     small_fs: Callable[..., Path]) -> None:
    fs = small_fs("home")
    fill_up(fs)
    code, _, err = cli(app_at(plugin_manager, fs), "run", "diamond")
    assert code == 2
    assert_one_line(err, f"no space left for a new run's set-up in {fs / 'runs'}", "it needs ",
                    f"0 B free on {fs}", hint=f"df -h {fs}")
    no_run_made(fs)
    no_leftovers(fs)


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


def test_a_disk_that_fills_up_mid_run_stops_it_in_one_line_and_resume_finishes_it(
        tmp_path: Path, small_fs: Callable[..., Path]) -> None:
    fs = small_fs("home")
    blut = badbook_blut(tmp_path, fs)
    r = blut("run", "badbook:fill", "--no-progress")
    assert r.returncode == 2, r.stderr
    [run_dir] = list((fs / "runs").iterdir())
    assert_one_line(r.stderr, "no space left to write ", str(run_dir), f"0 B free on {fs}",
                    hint=f"then `blut resume {run_dir.name}` continues the run")
    no_leftovers(fs)
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
    no_leftovers(fs)


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
    app = app_at(plugin_manager, fs)
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
    no_leftovers(fs)
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
