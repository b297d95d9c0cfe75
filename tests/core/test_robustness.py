"""What a long unattended run needs: timeouts, watchdog, NaN pruning, cancel and resume.

Everything here runs real stage processes; process-tree checks read /proc.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from blut_core import ExecOptions
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events
from tests.support.cli import run_blut, start_blut
from tests.support.procs import alive, wait_for


def _events(run_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    return list(read_events(run_dir / "status.jsonl"))


def _run_dir(home: Path) -> Path:
    runs = [p for p in (home / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def test_soft_hard_and_stall_limits(app) -> None:  # type: ignore[no-untyped-def]
    t = time.monotonic()
    summary = start_run(app, prepare(app, "testbook:timeouts"))
    took = time.monotonic() - t
    by = {o.stage: o for o in summary.stages}
    assert {n: o.classification.value for n, o in by.items()} == {
        "polite": "timeout", "stubborn": "timeout", "hard": "timeout", "stall": "stalled"}
    assert "stopped on SIGTERM" in (by["polite"].error or "")
    assert "did not stop within 0.5s" in (by["stubborn"].error or "")
    assert "hard timeout after 0.5s" in (by["hard"].error or "")
    assert "no heartbeat" in (by["stall"].error or "")
    assert by["stubborn"].duration < 5 and took < 30
    kinds = [e["event"] for e in _events(summary.run_dir)]
    assert kinds.count("stage_soft_timeout") == 2


def test_nan_prunes_the_branch_and_other_branches_go_on(app) -> None:  # type: ignore[no-untyped-def]
    t = time.monotonic()
    summary = start_run(app, prepare(app, "testbook:nan"))
    assert time.monotonic() - t < 30  # the NaN stage would sleep 60 s if not killed
    states = {o.stage: o.state.value for o in summary.stages}
    assert states == {"a": "ok", "train": "pruned", "evaluate": "pruned", "report": "pruned",
                      "other": "ok"}
    assert summary.outcome == "ok"
    train = next(o for o in summary.stages if o.stage == "train")
    assert "nan" in (train.error or "")
    metrics = [e for e in _events(summary.run_dir) if e["event"] == "stage_metric"]
    assert [m["values"]["loss"] for m in metrics if m["stage"] == "train"] == [1.0, 0.5, "nan"]


@pytest.mark.parametrize("bad", ["inf", "-inf"])
def test_infinities_prune_too(app, bad: str) -> None:  # type: ignore[no-untyped-def]
    summary = start_run(app, prepare(app, "testbook:nan", overrides=[f"bad={bad}"]))
    assert {o.stage: o.state.value for o in summary.stages}["train"] == "pruned"


def test_prune_summary_says_what_and_why(tmp_path: Path) -> None:
    r = run_blut("run", "testbook:nan", home=tmp_path / "h", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "pruned           train: pruned on metrics" in r.stdout
    assert "pruned           evaluate: input 'train' pruned" in r.stdout
    assert "3 pruned" in r.stdout


@pytest.mark.parametrize("how", ["sigterm", "blut-cancel"])
def test_cancel_kills_every_stage_process(tmp_path: Path, how: str) -> None:
    home, pids = tmp_path / "h", tmp_path / "pids"
    proc = start_blut("run", "testbook:long", home=home, tmp=tmp_path, BLUT_TEST_PIDS=str(pids))
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 4)
    seen = [int(p) for p in pids.read_text().split()]
    assert all(alive(p) for p in seen)
    run_dir = _run_dir(home)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        r = run_blut("cancel", run_dir.name, home=home, tmp=tmp_path)
        assert r.returncode == 0 and f"{run_dir.name}: cancelled" in r.stdout, r.stderr
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    wait_for(lambda: not any(alive(p) for p in seen), timeout=10)
    states = {e["stage"]: e["state"] for e in _events(run_dir) if e["event"] == "stage_finished"}
    assert states == {"quick": "ok", "slow1": "cancelled", "slow2": "cancelled"}
    listed = json.loads(run_blut("runs", "list", "--json", home=home, tmp=tmp_path).stdout)
    assert listed[0]["state"] == "cancelled"


def test_killed_driver_shows_interrupted_then_resumes(tmp_path: Path) -> None:
    home, journal = tmp_path / "h", tmp_path / "journal"
    proc = start_blut("run", "testbook:resumable", home=home, tmp=tmp_path,
                      BLUT_TEST_JOURNAL=str(journal))
    wait_for(lambda: journal.exists() and "step3" in journal.read_text())
    run_dir = _run_dir(home)
    started = [e for e in _events(run_dir) if e["event"] == "stage_started" and e["stage"] == "train"]
    stage_pid = started[0]["pid"]
    proc.kill()  # kill -9 of the driver; the stage process is left behind
    proc.wait(timeout=10)
    listed = json.loads(run_blut("runs", "list", "--json", home=home, tmp=tmp_path).stdout)
    assert listed[0]["state"] == "interrupted"
    r = run_blut("resume", run_dir.name, home=home, tmp=tmp_path, BLUT_TEST_JOURNAL=str(journal))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not alive(stage_pid)  # the orphan was killed before the stage ran again
    lines = journal.read_text().split()
    assert lines.count("first") == 1           # finished before the kill: not re-run
    assert lines.count("train") == 2           # interrupted: ran again
    assert lines.count("last") == 1
    steps = [ln for ln in lines if ln.startswith("step")]
    assert steps[-1] == "step9" and len(steps) < 14  # continued from its checkpoint
    assert (run_dir / "stages/train/out/steps.txt").read_text() == "10"
    events = _events(run_dir)
    resumed = next(e for e in events if e["event"] == "run_resumed")
    assert resumed["kept"] == ["first"] and resumed["rerun"] == ["train", "last"]
    train_attempts = [e["attempt"] for e in events if e["event"] == "stage_started" and e["stage"] == "train"]
    assert train_attempts == [1, 2]
    listed = json.loads(run_blut("runs", "list", "--json", home=home, tmp=tmp_path).stdout)
    assert listed[0]["state"] == "ok"


def test_resume_refuses_finished_and_running_runs(app) -> None:  # type: ignore[no-untyped-def]
    from blut_core import ConfigError
    from blut_core.run.resume import resume_run

    summary = start_run(app, prepare(app, "testbook:diamond"))
    with pytest.raises(ConfigError, match="already finished ok"):
        resume_run(app, summary.run_id)


def test_run_deadline_cancels(app) -> None:  # type: ignore[no-untyped-def]
    summary = start_run(app, prepare(app, "testbook:long"), options=ExecOptions(deadline=1.0))
    assert summary.outcome == "cancelled"
    assert {o.stage: o.state.value for o in summary.stages}["slow1"] == "cancelled"
    assert os.path.isdir(summary.run_dir)


def test_run_deadline_from_the_command_line(tmp_path: Path) -> None:
    r = run_blut("run", "testbook:long", "--deadline", "1.5", home=tmp_path / "h", tmp=tmp_path)
    assert r.returncode == 130, r.stderr
    assert "slow1" in r.stdout and "deadline" in r.stdout
