"""The executor on a launcher whose jobs queue, sample their peaks, or bring their own memory.

The stand-in (:mod:`tests.support.queued`) runs jobs on this machine but behaves, as far as
the executor can see, like a cluster: jobs wait in a queue, report when they really started,
and (when asked) a capacity of their own that admission uses instead of this box.
"""

from __future__ import annotations

from importlib import metadata as md
from pathlib import Path

import pytest

from blut_core import ExecOptions, StageState
from blut_core.run.orchestrate import prepare, start_run
from blut_core.run.resume import resume_run
from blut_core.store.rundir import read_events
from blut_core.testing import COOKBOOK_GROUP

QUEUED = md.EntryPoint(name="queued", value="tests.support.queued", group="blut.plugins")
QUEUEBOOK = md.EntryPoint(name="queuebook", value="tests.support.queued", group=COOKBOOK_GROUP)

pytestmark = pytest.mark.blut(cookbooks=[QUEUEBOOK], plugins=[QUEUED])


def _run(app, recipe: str, *overrides: str):  # type: ignore[no-untyped-def]
    return start_run(app, prepare(app, recipe, overrides=overrides), launcher="queued",
                     options=ExecOptions())


def _states(summary) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {o.stage: o.state.value for o in summary.stages}


def test_a_hard_timeout_counts_from_the_jobs_start_not_from_its_time_queued(
        app, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUEUED_SECONDS", "1.5")  # longer than the stages' hard timeout of 1 s
    summary = _run(app, "queuebook:timeouts")
    assert _states(summary) == {"quick": "ok", "slow": "failed"}
    slow = {o.stage: o for o in summary.stages}["slow"]
    assert slow.classification.value == "timeout" and "hard timeout after 1s" in (slow.error or "")
    # the slow stage was killed about a second after it started, not after it was submitted
    assert 0.9 <= slow.duration - 1.5 <= 2.5


def _peak_of(run_dir: Path) -> dict[str, object]:
    return [e for e in read_events(run_dir / "status.jsonl") if e["event"] == "stage_finished"][-1]


def test_a_sampled_peak_is_shown_but_never_calibrates(app, monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUEUED_SECONDS", "0")
    monkeypatch.setenv("QUEUED_PEAKS", "sampled")
    first = _run(app, "queuebook:peak")
    ev = _peak_of(first.run_dir)
    assert ev["peak_source"] == "sampled" and int(ev["peak_bytes"]) > 40 << 20  # type: ignore[call-overload]
    again = _run(app, "queuebook:peak")
    admitted = [e for e in read_events(again.run_dir / "status.jsonl") if e["event"] == "stage_admitted"]
    assert admitted and admitted[0].get("calibrated") in (None, False)
    assert admitted[0]["footprint_bytes"] == 256 << 20  # still the declaration, not the sample

    monkeypatch.setenv("QUEUED_PEAKS", "kernel")  # the same stage with kernel peaks does learn
    _run(app, "queuebook:peak")
    learnt = _run(app, "queuebook:peak")
    admitted = [e for e in read_events(learnt.run_dir / "status.jsonl") if e["event"] == "stage_admitted"]
    assert admitted[0]["footprint_bytes"] != 256 << 20


def test_resume_of_a_remote_run_admits_against_the_launcher_not_this_box(
        app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUEUED_SECONDS", "0")
    monkeypatch.setenv("QUEUED_CAPACITY", str(200 << 30))  # far more than this box has
    flag = tmp_path / "fail"
    flag.write_text("")
    first = _run(app, "queuebook:big", "need=100G", f"fail_flag={flag}")
    assert _states(first) == {"flaky": "failed", "big": "upstream_failed"}
    flag.unlink()
    resumed = resume_run(app, first.run_id, options=ExecOptions())
    assert resumed.outcome == "ok", resumed
    assert {o.stage: o.state for o in resumed.stages}["big"] is StageState.OK
    admitted = [e for e in read_events(first.run_dir / "status.jsonl")
                if e["event"] == "stage_admitted" and e["stage"] == "big"]
    assert admitted and admitted[-1]["cap_bytes"] >= 100 << 30
