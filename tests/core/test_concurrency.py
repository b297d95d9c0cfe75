"""Two runs at once on one machine never book more memory than the box.

The check is made from the status streams: every attempt's booking lasts from its
``stage_admitted`` event to its ``stage_finished`` event (the executor writes the latter
before it releases the booking), so summing the footprints of the open intervals at every
event gives what was booked at that moment, across both runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut_core.store.rundir import read_events
from tests.support.cli import run_blut, start_blut

pytestmark = pytest.mark.cgroup


def _booked_over_time(run_dirs: list[Path]) -> tuple[list[tuple[float, int]], int, int]:
    changes: list[tuple[float, int]] = []
    box = floor = 0
    for rd in run_dirs:
        sizes: dict[tuple[str, int], int] = {}
        for ev in read_events(rd / "status.jsonl"):
            key = (ev.get("stage"), ev.get("attempt"))
            if ev["event"] == "stage_admitted":
                sizes[key] = int(ev["footprint_bytes"])
                changes.append((ev["t"], +sizes[key]))
                box, floor = int(ev["box_bytes"]), int(ev["floor_bytes"])
            elif ev["event"] == "stage_finished" and key in sizes:
                changes.append((ev["t"], -sizes.pop(key)))
    changes.sort(key=lambda c: (c[0], c[1]))  # at equal times, releases first
    timeline, total = [], 0
    for t, delta in changes:
        total += delta
        timeline.append((t, total))
    return timeline, box, floor


def test_two_concurrent_runs_never_book_more_than_the_box(tmp_path: Path) -> None:
    home = tmp_path / "h"
    # Both runs share one ledger, as every blut process on a machine does; a private one
    # keeps other blut processes on this machine (other test sessions) out of the check.
    ledger_env = {"BLUT_LEDGER": str(tmp_path / "ledger.json")}
    # each stage declares a third of the box: both runs together ask for 8/3 boxes
    probe_run = run_blut("broker", "probe", "--json", home=home, tmp=tmp_path, **ledger_env)
    assert probe_run.returncode == 0, probe_run.stderr
    probe = json.loads(probe_run.stdout)
    third = probe["box_bytes"] // 3
    args = ["run", "testbook:memload", "-p", f"footprint={third}", "-p", "mb=96",
            "-p", "seconds=1.0", "--jobs", "4"]
    a = start_blut(*args, "-p", "tag=a", home=home, tmp=tmp_path, **ledger_env)
    b = start_blut(*args, "-p", "tag=b", home=home, tmp=tmp_path, **ledger_env)
    for proc in (a, b):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    run_dirs = sorted(p for p in (home / "runs").iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    timeline, box, floor = _booked_over_time(run_dirs)
    assert box > 0
    peak = max(total for _, total in timeline)
    assert peak <= box - floor, f"booked {peak} > {box - floor}"
    assert peak >= 2 * third              # stages did run side by side
    waited = [ev for rd in run_dirs for ev in read_events(rd / "status.jsonl")
              if ev["event"] == "stage_admitted" and ev["waited"] > 0]
    assert waited, "with 8 stages of a third of the box each, some must have waited"
    ok = [ev for rd in run_dirs for ev in read_events(rd / "status.jsonl")
          if ev["event"] == "stage_finished" and ev["state"] == "ok"]
    assert len(ok) == 8
    assert all(ev["peak_bytes"] and ev["peak_bytes"] >= 96 << 20 for ev in ok)
    ledger = json.loads(run_blut("broker", "ledger", "--json", home=home, tmp=tmp_path,
                                 **ledger_env).stdout)
    assert ledger["bookings"] == []


def test_two_concurrent_runs_of_small_stages_never_book_more_than_the_box(tmp_path: Path) -> None:
    """Small stages are given memory from their run's lease, without the ledger's lock; the
    other run must still count every leased byte. The floor leaves room for three stages
    (of what is available now: other processes on this machine use some of the box)."""
    home = tmp_path / "h"
    ledger_env = {"BLUT_LEDGER": str(tmp_path / "ledger.json")}
    probe_run = run_blut("broker", "probe", "--json", home=home, tmp=tmp_path, **ledger_env)
    assert probe_run.returncode == 0, probe_run.stderr
    probe = json.loads(probe_run.stdout)
    box = probe["box_bytes"]
    small = box // 16  # the largest stage a lease gives memory to
    env = {**ledger_env, "BLUT_FLOOR": str(probe["available_bytes"] - 3 * small - small // 2)}
    args = ["run", "testbook:memload", "-p", f"footprint={small}", "-p", "mb=8",
            "-p", "seconds=0.4", "-p", "stages=6", "--jobs", "4"]
    a = start_blut(*args, "-p", "tag=a", home=home, tmp=tmp_path, **env)
    b = start_blut(*args, "-p", "tag=b", home=home, tmp=tmp_path, **env)
    for proc in (a, b):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    run_dirs = sorted(p for p in (home / "runs").iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    timeline, seen_box, floor = _booked_over_time(run_dirs)
    assert seen_box == box
    peak = max(total for _, total in timeline)
    assert peak <= box - floor, f"booked {peak} > {box - floor}"
    assert peak >= 2 * small
    admitted = [ev for rd in run_dirs for ev in read_events(rd / "status.jsonl")
                if ev["event"] == "stage_admitted"]
    assert any("lease_free_bytes" in ev for ev in admitted), "no stage was given leased memory"
    assert any(ev["waited"] > 0 for ev in admitted), "12 stages, room for 3: some must wait"
    ok = [ev for rd in run_dirs for ev in read_events(rd / "status.jsonl")
          if ev["event"] == "stage_finished" and ev["state"] == "ok"]
    assert len(ok) == 12
    ledger = json.loads(run_blut("broker", "ledger", "--json", home=home, tmp=tmp_path,
                                 **ledger_env).stdout)
    assert ledger["bookings"] == []
