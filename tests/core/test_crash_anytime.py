"""A driver killed (SIGKILL) at any instant leaves no run or a whole one: never a directory
that no command sees. Whole ones are listed as interrupted and ``resume`` finishes them
without running finished stages again, or ``cancel`` cancels them.

Real ``blut run`` subprocesses, killed at instants spread over start-up, set-up and
execution, and at every step of the set-up (held there by ``BLUT_TEST_SETUP_PAUSE``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from blut_core.store.rundir import read_events
from tests.support.cli import run_blut, start_blut

RECIPE = "testbook:resumable"      # first → train (ten 0.3 s steps, checkpointed) → last
STAGES = ["first", "train", "last"]
INSTANTS = 16


def _runs(home: Path) -> list[Path]:
    root = home / "runs"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []


def _listed(home: Path, tmp: Path) -> list[dict[str, Any]]:
    r = run_blut("runs", "list", "--json", home=home, tmp=tmp)
    assert r.returncode == 0, r.stderr
    runs: list[dict[str, Any]] = json.loads(r.stdout)
    return runs


def _kill_after(home: Path, tmp: Path, journal: Path, seconds: float | None = None,
                until: Any = None, **env: str) -> None:
    proc = start_blut("run", RECIPE, "--no-progress", home=home, tmp=tmp,
                      BLUT_TEST_JOURNAL=str(journal), **env)
    deadline = time.monotonic() + (seconds if seconds is not None else 60.0)
    while time.monotonic() < deadline and proc.poll() is None:
        if until is not None and until():
            break
        time.sleep(0.005)
    proc.kill()
    proc.communicate(timeout=30)


def _check_whole_or_none(home: Path, tmp: Path, journal: Path, *, cancel: bool) -> str:
    """What the kill left, checked; returns ``none``, ``finished``, ``resumed`` or ``cancelled``."""
    runs = _runs(home)
    listed = _listed(home, tmp)
    assert [r["run_id"] for r in listed] == [p.name for p in runs]  # nothing hidden
    if not runs:
        return "none"
    [run] = listed
    run_dir = runs[0]
    assert run["state"] in ("interrupted", "ok"), run
    assert run["damage"] == []
    if run["state"] == "ok":
        return "finished"
    if cancel:
        r = run_blut("cancel", run["run_id"], home=home, tmp=tmp)
        assert r.returncode == 0 and f"{run['run_id']}: cancelled" in r.stdout, r.stderr
        assert _listed(home, tmp)[0]["state"] == "cancelled"
        return "cancelled"
    before = list(read_events(run_dir / "status.jsonl"))
    done = {e["stage"] for e in before if e["event"] in ("stage_finished", "stage_skipped")
            and e.get("state", "cached") in ("ok", "cached")}
    r = run_blut("resume", run["run_id"], "--no-progress", home=home, tmp=tmp,
                 BLUT_TEST_JOURNAL=str(journal))
    assert r.returncode == 0, r.stdout + r.stderr
    events = list(read_events(run_dir / "status.jsonl"))
    resumed = max(i for i, e in enumerate(events) if e["event"] == "run_resumed")
    rerun = {e["stage"] for e in events[resumed:] if e["event"] == "stage_started"}
    assert not rerun & done, f"finished stages ran again: {rerun & done}"
    ran = journal.read_text().split() if journal.exists() else []
    assert all(ran.count(s) == 1 for s in done), ran
    assert (run_dir / "stages/last/out/data.json").exists()
    assert _listed(home, tmp)[0]["state"] == "ok"
    return "resumed"


def test_a_driver_killed_at_any_instant_leaves_a_run_resume_finishes(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    t = time.monotonic()
    r = run_blut("run", RECIPE, "--no-progress", home=ref / "h", tmp=ref)
    whole = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    seen: dict[str, list[float]] = {}
    for i in range(INSTANTS):
        at = whole * i / (INSTANTS - 1)          # 0 … the time a whole run takes
        case = tmp_path / f"k{i}"
        home, journal = case / "h", case / "journal"
        _kill_after(home, case, journal, at)
        outcome = _check_whole_or_none(home, case, journal, cancel=i % 5 == 4)
        seen.setdefault(outcome, []).append(round(at, 2))
    print("kill instants by what they left:", seen)
    assert len(seen.get("resumed", [])) >= 3, seen   # the spread reached the stages


@pytest.mark.parametrize("step", range(7))
def test_a_driver_killed_at_each_step_of_set_up_leaves_nothing_or_a_whole_run(
        tmp_path: Path, step: int) -> None:
    """``BLUT_TEST_SETUP_PAUSE`` holds the driver after each set-up write: it is killed while
    it waits after step ``step`` (0: the set-up directory exists … 4: ``run_started``
    written; 5 and 6: published, then resumed or cancelled)."""
    home, journal = tmp_path / "h", tmp_path / "journal"
    setup = home / "runs" / ".setup"
    files = ["driver.json", "plan.json", "params.json", "provenance.json", "status.jsonl"]

    def reached() -> bool:
        if step < len(files):
            return any((d / files[step]).exists() for d in setup.glob("*")) if setup.is_dir() else False
        return bool(_runs(home))

    _kill_after(home, tmp_path, journal, until=reached, BLUT_TEST_SETUP_PAUSE="0.5")
    assert reached()
    outcome = _check_whole_or_none(home, tmp_path, journal, cancel=step == 6)
    assert outcome == ("none" if step < 5 else "cancelled" if step == 6 else "resumed")
    if outcome == "none":
        # what the killed set-up left is invisible, and the next run removes it
        assert setup.is_dir() and list(setup.iterdir())
        r = run_blut("run", "testbook:diamond", "--no-progress", home=home, tmp=tmp_path)
        assert r.returncode == 0, r.stderr
        assert not setup.exists()
        assert [r["state"] for r in _listed(home, tmp_path)] == ["ok"]
