"""OOM retries are on by default and apart from the error budget; a final memory failure says
what cap the stage had, what it reached and how to declare a footprint."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from blut_core import App, Classification, RetryOn, RetryPolicy, Stage, StageState
from blut_core.model.jobs import JobHandle, JobState, JobStatus
from blut_core.model.sizes import MiB
from blut_core.run.attempt import Attempt, memory_failure, retry_wait
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events
from blut_core.testing import oom_kills
from tests.broker import stages_mem
from tests.broker.boxed import memory_box, run_in_box


def _attempt(retry: RetryPolicy, number: int, cap: int = 320 * MiB, **kw: Any) -> Attempt:
    stage = Stage.call("s", stages_mem.hold, params={"mb": 1}, retry=retry)
    return Attempt(stage=stage, number=number, handle=JobHandle(launcher="local", job_id="1"),
                   dir=Path("/nonexistent"), tmp_out=Path("/nonexistent/out"), key=None,
                   started=0.0, cap=cap, **kw)


def test_an_oom_kill_is_retried_whatever_the_policy_says_about_errors() -> None:
    no_errors = RetryPolicy()  # max_attempts=1: no error retries at all
    assert RetryPolicy().oom_retries == 4
    for n in range(1, 5):  # four OOM kills in a row: each retried at once
        assert retry_wait(_attempt(no_errors, n), Classification.OOM, oom_kills=n) == 0.0
    assert retry_wait(_attempt(no_errors, 5), Classification.OOM, oom_kills=5) is None
    assert retry_wait(_attempt(no_errors, 1), Classification.ERROR, oom_kills=0) is None
    # retry_on=oom (no error retries) changes nothing about OOM kills
    only_oom = RetryPolicy(max_attempts=3, retry_on=RetryOn.OOM)
    assert retry_wait(_attempt(only_oom, 1), Classification.OOM, oom_kills=1) == 0.0
    assert retry_wait(_attempt(only_oom, 2), Classification.ERROR, oom_kills=1) is None


def test_oom_kills_do_not_use_up_the_error_budget() -> None:
    policy = RetryPolicy(max_attempts=2, delay=0.5, backoff="fixed")
    # attempts 1-3 were OOM-killed; attempt 4 is the first error: one error retry is left
    assert retry_wait(_attempt(policy, 4), Classification.ERROR, oom_kills=3) == 0.5
    assert retry_wait(_attempt(policy, 5), Classification.ERROR, oom_kills=3) is None


def test_a_policy_can_lower_or_switch_off_oom_retries() -> None:
    assert retry_wait(_attempt(RetryPolicy(oom_retries=0), 1), Classification.OOM, 1) is None
    once = RetryPolicy(oom_retries=1)
    assert retry_wait(_attempt(once, 1), Classification.OOM, 1) == 0.0
    assert retry_wait(_attempt(once, 2), Classification.OOM, 2) is None
    with pytest.raises(ValueError):
        RetryPolicy(oom_retries=-1)


def test_an_attempt_killed_at_the_box_limit_is_not_retried() -> None:
    limits = {"box_bytes": 3 << 30, "floor_bytes": 1 << 30, "model_bytes": 256 * MiB}
    at_limit = _attempt(RetryPolicy(), 2, cap=2 << 30, admission=limits)
    assert retry_wait(at_limit, Classification.OOM, 2) is None
    below = _attempt(RetryPolicy(), 2, cap=(2 << 30) - 1, admission=limits)
    assert retry_wait(below, Classification.OOM, 2) == 0.0
    line = memory_failure(at_limit, JobState(status=JobStatus.EXITED, peak_bytes=2 << 30), 2)
    assert "\n" not in line
    assert "2.0 GiB" in line and "the most this box can give" in line
    assert "3.0 GiB box − 1.0 GiB floor" in line and "8.0× the default footprint" in line


def test_the_final_memory_failure_says_cap_reached_and_how_to_declare() -> None:
    last = _attempt(RetryPolicy(oom_retries=2), 3, cap=704 * MiB)
    line = memory_failure(last, JobState(status=JobStatus.EXITED, peak_bytes=704 * MiB), 3)
    assert "\n" not in line
    assert "cap of 704.0 MiB" in line and "reached 704.0 MiB" in line
    assert "after 2 OOM retries" in line and "declares no footprint" in line
    assert 'Footprint.fixed("1.5G")' in line and "Footprint.scaling" in line
    off = memory_failure(_attempt(RetryPolicy(oom_retries=0), 1),
                         JobState(status=JobStatus.EXITED, peak_bytes=300 * MiB), 1)
    assert "oom_retries=0" in off and 'Footprint.fixed("640M")' in off


def test_a_real_oom_kill_is_retried_by_default_and_a_last_one_fails_in_one_line(
        app: App, caged: str) -> None:
    # hog declares 64M and touches 192M; its recipe's policy only says max_attempts=1
    summary = start_run(app, prepare(app, "memtest:hog", overrides=["attempts=1"]))
    [hog] = summary.stages
    assert summary.outcome == "ok" and hog.state is StageState.OK and hog.attempt == 2
    kinds = [e["event"] for e in read_events(summary.run_dir / "status.jsonl")]
    assert kinds.count("stage_retrying") == 1

    failed = start_run(app, prepare(app, "memtest:hog", overrides=[
        "attempts=1", "mb=256", "oom_retries=0"]), no_calibration=True)
    [hog] = failed.stages
    assert failed.outcome == "failed" and hog.classification is Classification.OOM
    assert hog.attempt == 1 and hog.error is not None and "\n" not in hog.error
    assert "cap of 128.0 MiB" in hog.error and "reached" in hog.error
    assert "Footprint.fixed(" in hog.error


@pytest.mark.cgroup
def test_sixteen_undeclared_stages_finish_in_one_run_in_a_small_box(
        caged: str, tmp_path: Path) -> None:
    """The user's head-to-head, scaled to this machine: a 3 GiB box, 16 stages of 150 to 600 MiB
    that declare nothing, and a default footprint (256 MiB, a 320 MiB cap) that most of them
    outgrow. Every one must finish in one ``blut run``, and nothing outside a stage's cap is
    OOM-killed (the driver survives and the box itself counts no kill)."""
    with memory_box(3 << 30) as box:
        start = time.monotonic()
        result = run_in_box(box, "run", "memtest:sixteen", "--json", home=tmp_path / "home",
                            tmp=tmp_path, timeout=90, BLUT_DEFAULT_FOOTPRINT="256M")
        wall = time.monotonic() - start
        assert oom_kills(box) == 0
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "ok" and summary["counts"]["ok"] == 16
    run_dir = Path(summary["run_dir"])
    events = list(read_events(run_dir / "status.jsonl"))
    admitted = [e for e in events if e["event"] == "stage_admitted"]
    assert {e["box_bytes"] for e in admitted} == {3 << 30}   # the box is the cgroup's limit
    killed = [e for e in events if e["event"] == "stage_finished" and e["classification"] == "oom"]
    assert len(killed) >= 8                                 # most outgrew the default…
    assert all(s["attempts"] <= 2 for s in summary["stages"])  # …and ran on their first retry
    print(f"16 stages in a 3 GiB box: {len(killed)} OOM retries, {wall:.1f}s wall")


def test_a_resumed_run_counts_the_oom_kills_before_it_apart_from_errors(
        app: App, caged: str) -> None:
    """An OOM kill before ``blut resume`` stays an OOM kill after it: it does not use up the
    error budget of the attempts the resumed run makes (max_attempts=2 here: the first
    attempt is killed, the run fails for want of OOM retries; after the resume, one error is
    retried and the third attempt succeeds)."""
    from blut_core.run.resume import resume_run

    first = start_run(app, prepare(app, "memtest:scripted", overrides=[
        "script=oom,error,ok", "attempts=2", "oom_retries=0"]), no_calibration=True)
    assert first.outcome == "failed"
    assert [s.classification for s in first.stages] == [Classification.OOM]
    resumed = resume_run(app, first.run_id)
    [stage] = resumed.stages
    assert resumed.outcome == "ok", stage.error
    assert stage.attempt == 3 and stage.state is StageState.OK
    events = list(read_events(first.run_dir / "status.jsonl"))
    finished = [(e["attempt"], e["classification"]) for e in events
                if e["event"] == "stage_finished"]
    assert finished == [(1, "oom"), (2, "error"), (3, "ok")]
