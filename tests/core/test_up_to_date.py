"""A run whose every stage is cached is recorded like any run, without the run machinery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut_core import ExecOptions
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events


def _run(app, recipe: str, *overrides: str, **options: object):  # type: ignore[no-untyped-def]
    return start_run(app, prepare(app, recipe, overrides=overrides), options=ExecOptions(**options))  # type: ignore[arg-type]


def test_an_all_cached_rerun_needs_no_broker_launcher_or_ledger(
        app, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = tmp_path / "ledger.json"
    monkeypatch.setenv("BLUT_LEDGER", str(ledger))
    first = _run(app, "testbook:diamond", "n=2")
    assert first.outcome == "ok" and ledger.exists()
    before = ledger.read_bytes()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run machinery was started for a run with nothing to run")

    monkeypatch.setattr("blut_core.run.service.Broker", refuse)
    monkeypatch.setattr("blut_core.run.orchestrate.make_launcher", refuse)
    monkeypatch.setattr("blut_core.run.orchestrate.prepare_launcher", refuse)
    again = _run(app, "testbook:diamond", "n=2")

    assert again.outcome == "ok" and {o.state.value for o in again.stages} == {"cached"}
    events = list(read_events(again.run_dir / "status.jsonl"))
    assert [e["event"] for e in events].count("stage_skipped") == 5
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    copied = json.loads((again.run_dir / "stages/e/out/copied.json").read_text())
    assert copied["params"] == {"n": 2}  # outputs are there, from the cache
    assert ledger.read_bytes() == before  # nothing booked, nothing rewritten


def test_one_stage_to_run_starts_the_machinery_as_usual(app) -> None:  # type: ignore[no-untyped-def]
    _run(app, "testbook:diamond", "n=2")
    partly = _run(app, "testbook:diamond", "n=2", "inner.label=y")  # c and d must run again
    states = {o.stage: o.state.value for o in partly.stages}
    assert states == {"a": "cached", "b": "cached", "c": "ok", "d": "ok", "e": "cached"}


def test_no_cache_runs_everything_even_when_all_is_cached(app) -> None:  # type: ignore[no-untyped-def]
    _run(app, "testbook:diamond")
    forced = _run(app, "testbook:diamond", no_cache=True)
    assert {o.state.value for o in forced.stages} == {"ok"}


def test_an_unknown_launcher_is_refused_even_when_all_is_cached(app) -> None:  # type: ignore[no-untyped-def]
    from blut_core.errors import PluginError

    _run(app, "testbook:diamond")
    with pytest.raises(PluginError, match="nosuch"):
        start_run(app, prepare(app, "testbook:diamond"), launcher="nosuch")
