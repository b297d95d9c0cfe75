"""Running plans for real: subprocesses, outputs, cache, promotion, retries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut_core import ExecOptions, RunSummary, StageState
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.txt"
    monkeypatch.setenv("BLUT_TEST_JOURNAL", str(path))
    return path


def ran(journal: Path) -> list[str]:
    return journal.read_text().split() if journal.exists() else []


def run(app, recipe: str, *overrides: str, **options: object) -> RunSummary:  # type: ignore[no-untyped-def]
    return start_run(app, prepare(app, recipe, overrides=overrides), options=ExecOptions(**options))  # type: ignore[arg-type]


def states(summary: RunSummary) -> dict[str, str]:
    return {o.stage: o.state.value for o in summary.stages}


def test_diamond_runs_with_real_outputs(app, journal) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "testbook:diamond", "n=3")
    assert summary.outcome == "ok"
    assert states(summary) == dict.fromkeys("abcde", "ok")
    d = json.loads((summary.run_dir / "stages/d/out/data.json").read_text())
    assert d["inputs"] == {"b": ["data.json"], "c": ["data.json"]}
    copied = json.loads((summary.run_dir / "stages/e/out/copied.json").read_text())
    assert copied["params"] == {"n": 3}
    assert sorted(ran(journal)) == ["a", "b", "c", "d"]


def test_run_directory_holds_the_source_of_truth(app) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "diamond")
    rd = summary.run_dir
    plan = json.loads((rd / "plan.json").read_text())
    assert [s["name"] for s in plan["stages"]] == ["a", "b", "c", "d", "e"]
    assert json.loads((rd / "params.json").read_text())["inner"] == {"size": 3, "label": "x"}
    prov = json.loads((rd / "provenance.json").read_text())
    for key in ("blut_version", "python", "host", "cpu_model", "cores", "ram_bytes", "plugins", "recipe_git"):
        assert key in prov, key
    assert prov["recipe_git"]["commit"]  # the test cookbook lives in this git checkout
    events = [e["event"] for e in read_events(rd / "status.jsonl")]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert events.count("stage_started") == 5
    assert (rd / "stages/a/attempts/1/stdout.log").exists()
    assert "stage_metric" in events


def test_second_run_is_cached_and_no_cache_forces(app, journal) -> None:  # type: ignore[no-untyped-def]
    run(app, "diamond")
    journal.unlink()
    again = run(app, "diamond")
    assert set(states(again).values()) == {"cached"}
    assert ran(journal) == []
    assert (again.run_dir / "stages/d/out/data.json").exists()
    forced = run(app, "diamond", no_cache=True)
    assert set(states(forced).values()) == {"ok"}
    assert sorted(ran(journal)) == ["a", "b", "c", "d"]


def test_param_change_invalidates_only_downstream(app, journal) -> None:  # type: ignore[no-untyped-def]
    run(app, "diamond")
    journal.unlink()
    summary = run(app, "diamond", "inner.size=5")  # only b's params change
    assert states(summary) == {"a": "cached", "b": "ok", "c": "cached", "d": "ok", "e": "cached"}
    assert sorted(ran(journal)) == ["b", "d"]


def test_corrupt_cache_entry_is_a_miss_not_a_crash(app, journal) -> None:  # type: ignore[no-untyped-def]
    first = run(app, "diamond")
    key = next(o.cache_key for o in first.stages if o.stage == "a")
    assert key is not None
    meta = app.settings.cache_dir / key[:2] / key / "meta.json"
    meta.write_text("{not json")
    journal.unlink()
    summary = run(app, "diamond")
    assert states(summary)["a"] == "ok"
    assert "a" in ran(journal)


def test_failed_stage_output_is_never_promoted(app) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "testbook:failing")
    assert summary.outcome == "failed"
    assert states(summary) == {"a": "ok", "bad": "failed", "after": "upstream_failed", "side": "ok"}
    rd = summary.run_dir
    assert not (rd / "stages/bad/out").exists()
    assert (rd / "stages/bad/attempts/1/out.tmp/partial.txt").exists()
    bad = next(o for o in summary.stages if o.stage == "bad")
    assert "boom after writing output" in (bad.error or "")
    # nothing of the failed stage reached the cache
    assert not any(p.name == bad.cache_key for p in app.settings.cache_dir.glob("*/*"))


def test_fail_fast_stops_other_branches(app) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "failing", fail_fast=True)
    assert summary.outcome == "cancelled"
    assert states(summary)["bad"] == "failed"


def test_transient_failure_is_retried(app, journal) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "testbook:flaky")
    assert summary.outcome == "ok"
    assert ran(journal) == ["f", "f"]
    events = list(read_events(summary.run_dir / "status.jsonl"))
    assert [e["attempt"] for e in events if e["event"] == "stage_retrying"] == [2]


def test_deterministic_failure_is_never_retried(app, journal) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "testbook:deterministic")
    (outcome,) = summary.stages
    assert outcome.state is StageState.FAILED and outcome.classification.value == "deterministic"
    assert ran(journal) == ["d"]
    assert "bad input" in (outcome.error or "")


def test_unwritable_home_is_a_config_error_and_leaves_nothing(tmp_path, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    from blut_core import App, ConfigError, Settings

    blocker = tmp_path / "file"
    blocker.write_text("")
    app = App(plugin_manager, Settings.from_environ({"BLUT_HOME": str(blocker / "home")}))
    with pytest.raises(ConfigError, match="not writable"):
        start_run(app, prepare(app, "diamond"))


def test_a_missing_command_fails_its_stage_not_the_run(app) -> None:  # type: ignore[no-untyped-def]
    summary = run(app, "testbook:missing-command")
    by = {o.stage: o for o in summary.stages}
    assert by["fine"].state is StageState.OK
    assert by["ghost"].state is StageState.FAILED
    assert by["ghost"].classification.value == "deterministic"
    error = by["ghost"].error or ""
    assert "/nonexistent/blut-test-command" in error
    assert "cannot start" in error or "not found" in error
    assert summary.outcome == "failed"
