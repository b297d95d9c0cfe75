"""Live progress: what the executor reports while a run goes, and how it is shown."""

from __future__ import annotations

import io
import re
from pathlib import Path

from blut_core.run.orchestrate import prepare, start_run
from blut_core.run.progress import LiveTable, LogLines, Snapshot, StageView
from tests.support.cli import run_blut


class Recorder:
    def __init__(self) -> None:
        self.snaps: list[Snapshot] = []
        self.closed: Snapshot | None = None

    def update(self, snapshot: Snapshot) -> None:
        self.snaps.append(snapshot)

    def close(self, snapshot: Snapshot) -> None:
        self.closed = snapshot


def test_snapshots_follow_the_run(app) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    start_run(app, prepare(app, "testbook:timeouts"), progress=rec)
    seen = {(v.name, v.state) for s in rec.snaps for v in s.stages}
    assert ("polite", "running") in seen and ("stall", "running") in seen
    assert rec.closed is not None
    final = {v.name: v.state for v in rec.closed.stages}
    assert final == {"polite": "failed", "stubborn": "failed", "hard": "failed", "stall": "failed"}
    notes = {v.name: v.note for v in rec.closed.stages}
    assert "no heartbeat" in notes["stall"]
    running = [v for s in rec.snaps for v in s.stages if v.state == "running"]
    assert all(v.elapsed is not None and v.elapsed >= 0 for v in running)
    booked = [s.booked for s in rec.snaps if s.booked]
    assert booked and max(booked) >= 4 * 64 * 1024 * 1024  # the memory policy reports bookings


def _snap() -> Snapshot:
    return Snapshot(run_id="r1", booked=3 << 30, available=20 << 30, stages=(
        StageView(name="train", state="running", elapsed=12.5, cap=4 << 30, footprint=3 << 30),
        StageView(name="big", state="waiting", note="needs 30.0 GiB, 17.0 GiB free now"),
        StageView(name="prep", state="ok", elapsed=1.0, peak=200 << 20),
    ))


def test_plain_lines_say_each_change_once() -> None:
    out = io.StringIO()
    sink = LogLines(out)
    sink.update(_snap())
    sink.update(_snap())
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.search(r"running\s+train \(cap 4\.0 GiB\)", lines[0])
    assert "waiting   big (needs 30.0 GiB, 17.0 GiB free now)" in lines[1]
    assert "ok        prep (1.00s; peak 200.0 MiB)" in lines[2]


def test_live_table_renders_states_and_memory() -> None:
    from rich.console import Console

    table = LiveTable(io.StringIO())
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(table._render(_snap()))
    text = console.export_text()
    assert "1 running, 1 waiting, 1 ok" in text
    assert "memory booked 3.0 GiB, available 20.0 GiB" in text
    assert "needs 30.0 GiB" in text and "12.50s" in text


def test_console_script_prints_plain_progress_when_piped(tmp_path: Path) -> None:
    r = run_blut("run", "testbook:diamond", home=tmp_path / "h", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^\d\d:\d\d:\d\d running\s+a", r.stderr, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d ok\s+d ", r.stderr, re.M)
    quiet = run_blut("run", "testbook:diamond", "--no-progress", home=tmp_path / "h", tmp=tmp_path)
    assert "running" not in quiet.stderr
