"""One damaged run never hides the others.

A run directory whose files are damaged is listed as ``damaged`` with the reason (also from
the lineage index, which skips it with a warning), ``runs show`` says what is damaged and what
is still readable, and ``resume`` and ``cancel`` refuse it in one line (exit 2). A status
stream whose last line a killed driver cut short is not damage: that run stays resumable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blut_core import App, ConfigError
from blut_core.run.orchestrate import prepare, start_run
from blut_core.run.resume import cancel_run, resume_run
from blut_core.store.rundir import read_status
from tests.support.cli import run_blut

Damage = Callable[[Path], None]


def _bytes(name: str, data: bytes) -> Damage:
    def damage(run: Path) -> None:
        (run / name).write_bytes(data)
    return damage


def _remove(name: str) -> Damage:
    def damage(run: Path) -> None:
        (run / name).unlink()
    return damage


def _middle_line_garbled(run: Path) -> None:
    lines = (run / "status.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = b'{"event": "stage_started", "sta\xff\xfe garbage\n'
    (run / "status.jsonl").write_bytes(b"".join(lines))


def _first_line_cut(run: Path) -> None:
    (run / "status.jsonl").write_bytes((run / "status.jsonl").read_bytes()[:25])


def _status_is_a_directory(run: Path) -> None:
    (run / "status.jsonl").unlink()
    (run / "status.jsonl").mkdir()


def _output_lost(run: Path) -> None:
    shutil.rmtree(run / "stages" / "b" / "out")


def _nested_too_deep(run: Path) -> None:
    (run / "params.json").write_text("[" * 100_000 + "]" * 100_000)


DAMAGES: dict[str, tuple[Damage, str]] = {
    "status-overwritten-with-bytes": (_bytes("status.jsonl", os.urandom(4096) + b"\xff\n\x00"),
                                      "status.jsonl line"),
    "status-garbled-in-the-middle": (_middle_line_garbled, "status.jsonl line 3"),
    "status-cut-in-its-first-line": (_first_line_cut, "no run_started event"),
    "status-missing": (_remove("status.jsonl"), "status.jsonl is missing"),
    "status-a-directory": (_status_is_a_directory, "status.jsonl is a directory"),
    "plan-missing": (_remove("plan.json"), "plan.json is missing"),
    "plan-corrupt": (_bytes("plan.json", b'{"recipe": "x", "stag'), "plan.json is not valid JSON"),
    "plan-not-a-plan": (_bytes("plan.json", b'{"recipe": "x"}'), "plan.json is not a plan"),
    "params-missing": (_remove("params.json"), "params.json is missing"),
    "params-binary": (_bytes("params.json", b"\x89PNG\r\n\x1a\n\x00\xff"), "params.json is not UTF-8"),
    "params-nested-too-deep": (_nested_too_deep, "params.json"),
    "provenance-missing": (_remove("provenance.json"), "provenance.json is missing"),
    "provenance-corrupt": (_bytes("provenance.json", b"[1, 2"), "provenance.json is not valid JSON"),
    "driver-missing": (_remove("driver.json"), "driver.json is missing"),
    "driver-corrupt": (_bytes("driver.json", b'{"pid": "me"}'), "driver.json names no driver"),
    "stage-output-lost": (_output_lost, "finished stage b"),
}


@pytest.fixture
def two_runs(app: App) -> tuple[Path, Path]:
    """Two finished runs of the same recipe: the first is damaged by the tests, the second not."""
    first = start_run(app, prepare(app, "testbook:diamond"))
    second = start_run(app, prepare(app, "testbook:diamond", overrides=["n=2"]))
    assert first.outcome == second.outcome == "ok"
    ended = max(e["t"] for e in read_status(first.run_dir / "status.jsonl").events)
    time.sleep(max(0.0, ended + 1.5 - time.time()))  # damage comes after the index was written
    return first.run_dir, second.run_dir


def _json(result: Any) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", list(DAMAGES))
def test_a_damaged_run_is_listed_shown_skipped_and_refused(app: App, invoke: Any, two_runs: tuple[Path, Path],
                                                           case: str) -> None:
    bad, good = two_runs
    damage, reason = DAMAGES[case]
    damage(bad)

    for when in ("indexed", "reindexed"):   # the lineage index knows it as ok; then, reindexed, not
        listed = {r["run_id"]: r for r in _json(invoke("runs", "list", "--json"))}
        assert set(listed) == {bad.name, good.name}
        assert listed[good.name]["state"] == "ok" and listed[good.name]["damage"] == []
        # the list looks at a run's own files, not at every stage's output, until a reindex
        if case != "stage-output-lost" or when == "reindexed":
            assert listed[bad.name]["state"] == "damaged"
            assert any(reason in d for d in listed[bad.name]["damage"]), listed[bad.name]
            assert [r["run_id"] for r in _json(invoke("runs", "list", "--state", "damaged",
                                                      "--json"))] == [bad.name]
        data = _json(invoke("lineage", "reindex", "--json"))
        assert data["runs"] == 1 and [s["run_dir"] for s in data["skipped"]] == [str(bad)]
        assert reason in data["skipped"][0]["error"]
    text = invoke("runs", "list")
    assert text.exit_code == 0
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith(bad.name))
    assert "damaged" in line and reason in line

    shown = _json(invoke("runs", "show", bad.name, "--json"))
    assert shown["state"] == "damaged" and any(reason in d for d in shown["damage"])
    assert shown["readable"] and not any(name in reason for name in shown["readable"])
    text = invoke("runs", "show", bad.name)
    assert text.exit_code == 0 and "damaged" in text.stdout and "readable " in text.stdout

    for act, what in ((resume_run, "resumed"), (cancel_run, "cancelled")):
        with pytest.raises(ConfigError) as info:
            act(app, bad.name)
        assert f"run {bad.name} is damaged, so it cannot be {what}" in info.value.message
        assert reason in info.value.message and "blut runs show" in (info.value.hint or "")


def test_resume_and_cancel_of_a_damaged_run_exit_2_in_one_line(app: App, two_runs: tuple[Path, Path],
                                                              tmp_path: Path, blut_home: Path) -> None:
    bad, good = two_runs
    (bad / "status.jsonl").write_bytes(os.urandom(2048))
    for command in ("resume", "cancel"):
        r = run_blut(command, bad.name, home=blut_home, tmp=tmp_path)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines[0].startswith(f"Error: run {bad.name} is damaged") and "status.jsonl" in lines[0]
        assert lines[1].startswith("Hint: ") and len(lines) == 2 and "Traceback" not in r.stderr
    for args in (("runs", "list"), ("runs", "show", bad.name), ("lineage", "reindex"),
                 ("runs", "list")):
        r = run_blut(*args, home=blut_home, tmp=tmp_path)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert bad.name in r.stdout or args[-1] == "reindex"
        assert good.name in r.stdout or args[1] in ("show", "reindex")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _interrupted(run: Path) -> None:
    """Make a finished run look like one whose driver was killed: no run_finished, dead driver."""
    status = run / "status.jsonl"
    lines = [ln for ln in status.read_bytes().splitlines(keepends=True) if b'"run_finished"' not in ln]
    status.write_bytes(b"".join(lines))
    info = json.loads((run / "driver.json").read_text())
    (run / "driver.json").write_text(json.dumps({**info, "pid": _dead_pid()}))


def test_a_last_line_cut_by_a_killed_driver_is_not_damage(app: App, invoke: Any,
                                                          two_runs: tuple[Path, Path]) -> None:
    run, _ = two_runs
    _interrupted(run)
    status = run / "status.jsonl"
    data = status.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    assert b'"stage_finished"' in last
    status.write_bytes(data[:len(data) - len(last) // 2 - 1])   # its last event cut in half
    stream = read_status(status)
    assert stream.torn and stream.problem is None
    assert _json(invoke("lineage", "reindex", "--json"))["skipped"] == []  # it indexed it as ok
    listed = {r["run_id"]: r for r in _json(invoke("runs", "list", "--json"))}
    assert listed[run.name]["state"] == "interrupted" and listed[run.name]["damage"] == []
    summary = resume_run(app, run.name)
    assert summary.outcome == "ok"
    after = read_status(status)
    assert after.problem is None and not after.torn     # the cut line was mended, not kept
    assert [e["event"] for e in after.events].count("run_resumed") == 1
    assert _json(invoke("runs", "show", run.name, "--json"))["state"] == "ok"


def test_an_interrupted_run_with_a_torn_last_line_can_be_cancelled(app: App,
                                                                   two_runs: tuple[Path, Path]) -> None:
    run, _ = two_runs
    _interrupted(run)
    status = run / "status.jsonl"
    status.write_bytes(status.read_bytes() + b'{"event": "stage_sta')
    assert cancel_run(app, run.name) == "cancelled"
    after = read_status(status)
    assert after.problem is None and after.events[-1]["event"] == "run_finished"


def test_a_damaged_running_run_is_still_running(app: App, invoke: Any, two_runs: tuple[Path, Path]) -> None:
    """A run whose driver lives is running, whatever is damaged; the damage is still named."""
    run, _ = two_runs
    status = run / "status.jsonl"
    status.write_bytes(b"".join(ln for ln in status.read_bytes().splitlines(keepends=True)
                                if b'"run_finished"' not in ln))
    (run / "provenance.json").unlink()
    shown = _json(invoke("runs", "show", run.name, "--json"))
    assert shown["state"] == "running" and shown["damage"] == ["provenance.json is missing"]
