"""A run writes a stage's cache entry after starting what it could, and all before it ends."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core import ExecOptions
from blut_core.host.app import App
from blut_core.host.log import configure_logging
from blut_core.model.outcome import RunSummary
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.cache import Cache, PendingStore
from blut_core.store.rundir import read_events


def _run(app: App, *overrides: str) -> RunSummary:
    return start_run(app, prepare(app, "testbook:diamond", overrides=overrides),
                     options=ExecOptions())


def test_dependents_start_before_the_entry_and_every_entry_is_in_place_at_the_end(
        app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, float] = {}
    write = Cache.write

    def slow_write(self: Cache, pending: PendingStore):  # type: ignore[no-untyped-def]
        time.sleep(0.05)  # a slow disk: the run must still wait for its last entries
        written[pending.stage] = time.time()
        return write(self, pending)

    monkeypatch.setattr(Cache, "write", slow_write)
    summary = _run(app, "n=2")

    assert summary.outcome == "ok"
    cache = Cache(app.settings.cache_dir)
    assert all(cache.lookup(o.cache_key or "") is not None for o in summary.stages)
    started = {e["stage"]: e["t"] for e in read_events(summary.run_dir / "status.jsonl")
               if e["event"] == "stage_started"}
    # a's dependents did not wait for a's entry to be written
    assert min(started["b"], started["c"], started["e"]) < written["a"]
    again = _run(app, "n=2")
    assert {o.state.value for o in again.stages} == {"cached"}


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Folders made immutable (``chattr +i``: even root cannot add to them), undone after."""
    made: list[Path] = []
    yield made
    if made:
        subprocess.run(["chattr", "-i", *map(str, made)], check=False)


@pytest.fixture
def json_warnings() -> Iterator[None]:
    """Warnings as JSON lines on this test's stderr; after it, logging binds stderr afresh."""
    configure_logging(level="warning", fmt="json")
    yield
    configure_logging()


def test_a_cache_that_takes_no_entry_warns_and_the_stages_are_ok(
        app: App, immutable: list[Path], json_warnings: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    # every key-prefix folder there is, made immutable: the cache directory itself stays
    # writable (a run checks that before it starts), but no entry can be added to it
    folders = [app.settings.cache_dir / f"{i:02x}" for i in range(256)]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["chattr", "+i", *map(str, folders)], capture_output=True, text=True)
    if made.returncode != 0:  # not root, or a file system without the flag (tmpfs)
        pytest.skip(f"chattr +i is not possible here: {made.stderr.strip()}")
    immutable.extend(folders)

    summary = _run(app, "n=3")

    assert summary.outcome == "ok" and {o.state.value for o in summary.stages} == {"ok"}
    copied = json.loads((summary.run_dir / "stages/e/out/copied.json").read_text())
    assert copied["params"] == {"n": 3}  # the outputs are where the run keeps them
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    warned = {e["stage"] for e in lines if e.get("event") == "cache_not_stored"}
    assert warned == {o.stage for o in summary.stages}
    events = [e["event"] for e in read_events(summary.run_dir / "status.jsonl")]
    assert events[-1] == "run_finished"

    subprocess.run(["chattr", "-i", *map(str, folders)], check=True)
    again = _run(app, "n=3")
    assert {o.state.value for o in again.stages} == {"ok"}  # nothing was cached: all run again
    third = _run(app, "n=3")
    assert {o.state.value for o in third.stages} == {"cached"}  # stored this time
