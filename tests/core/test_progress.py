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


MiB, GiB = 1 << 20, 1 << 30

#: The events of a run in which: hog was OOM-killed and runs again with a raised cap; train was
#: right-sized and reports metrics; flaky failed and waits to retry; bad failed for good.
EVENTS = [
    {"event": "stage_admitted", "stage": "hog", "attempt": 1, "footprint_bytes": 64 * MiB,
     "cap_bytes": 128 * MiB, "decision": "admit", "source": "model", "waited": 0.0},
    {"event": "stage_started", "stage": "hog", "attempt": 1, "cap_bytes": 128 * MiB},
    {"event": "stage_finished", "stage": "hog", "attempt": 1, "state": "failed",
     "classification": "oom", "cap_bytes": 128 * MiB, "peak_bytes": 128 * MiB, "duration": 0.3,
     "error": "killed by its memory cap of 128.0 MiB"},
    {"event": "stage_retrying", "stage": "hog", "attempt": 2, "max_attempts": 3, "after": 0.0,
     "classification": "oom"},
    {"event": "stage_admitted", "stage": "hog", "attempt": 2, "footprint_bytes": 500 * MiB,
     "cap_bytes": 568 * MiB, "decision": "admit", "source": "oom_corrected", "waited": 0.0},
    {"event": "stage_started", "stage": "hog", "attempt": 2, "cap_bytes": 568 * MiB},
    {"event": "stage_admitted", "stage": "train", "attempt": 1, "footprint_bytes": 3 * GiB,
     "cap_bytes": 4 * GiB, "decision": "right_size", "source": "model", "waited": 12.0,
     "reason": "workers 64 → 3 to fit 3.1 GiB free (asked for 64.0 GiB)"},
    {"event": "stage_started", "stage": "train", "attempt": 1, "cap_bytes": 4 * GiB},
    {"event": "stage_metric", "stage": "train", "attempt": 1, "step": 10,
     "values": {"loss": 0.3141592}},
    {"event": "stage_admitted", "stage": "flaky", "attempt": 1, "footprint_bytes": 64 * MiB,
     "cap_bytes": 128 * MiB, "decision": "admit", "source": "model", "waited": 0.0},
    {"event": "stage_started", "stage": "flaky", "attempt": 1, "cap_bytes": 128 * MiB},
    {"event": "stage_finished", "stage": "flaky", "attempt": 1, "state": "failed",
     "classification": "error", "cap_bytes": 128 * MiB, "peak_bytes": MiB, "duration": 0.3,
     "error": "exit code 1: boom"},
    {"event": "stage_retrying", "stage": "flaky", "attempt": 2, "max_attempts": 3, "after": 5.0,
     "classification": "error"},
    {"event": "stage_admitted", "stage": "long", "attempt": 1, "footprint_bytes": GiB,
     "cap_bytes": 2 * GiB, "decision": "admit", "source": "measured", "waited": 0.0},
    {"event": "stage_started", "stage": "long", "attempt": 1, "cap_bytes": 2 * GiB},
    {"event": "stage_soft_timeout", "stage": "long", "attempt": 1, "after": 60.0, "grace": 5.0},
]


def _every_state() -> Snapshot:
    from blut_core.run.scheduling import BookedRun

    waiting_note = ("needs 30.0 GiB, 17.0 GiB free now (20.0 GiB available − 1.0 GiB booked − "
                    "2.4 GiB floor); booked: this run 4.6 GiB for hog, train; blut run big:fit "
                    "(pid 4242) 6.0 GiB for fit")
    return Snapshot(
        run_id="r1", booked=int(4.6 * GiB), available=20 * GiB, box=24 * GiB, floor=int(2.4 * GiB),
        by_run=(BookedRun(pid=1, command="this run", bytes=int(4.6 * GiB), outstanding=GiB,
                          stages=("hog", "train"), own=True),
                BookedRun(pid=4242, command="blut run big:fit", bytes=6 * GiB, outstanding=6 * GiB,
                          stages=("fit",))),
        stages=(
            StageView(name="hog", state="running", elapsed=1.5, cap=568 * MiB,
                      footprint=500 * MiB, live=200 * MiB, attempt=2, max_attempts=3),
            StageView(name="train", state="running", elapsed=12.5, cap=4 * GiB, footprint=3 * GiB,
                      live=int(1.2 * GiB), attempt=1),
            StageView(name="long", state="running", elapsed=61.0, cap=2 * GiB, attempt=1),
            StageView(name="flaky", state="retrying", retry_in=4.2),
            StageView(name="big", state="waiting", note=waiting_note),
            StageView(name="prep", state="ok", elapsed=1.0, peak=200 * MiB, cap=GiB),
            StageView(name="old", state="cached", note="result from the cache"),
            StageView(name="eval", state="pending", note="after train, big"),
            StageView(name="bad", state="failed", elapsed=0.2, peak=MiB, cap=128 * MiB,
                      note="exit code 1: ValueError: no"),
            StageView(name="after", state="upstream_failed", note="input 'bad' failed"),
        ))


def _rows(text: str) -> dict[str, str]:
    """Table rows by stage name as ``"cell | cell | …"``, wrapped cells joined up."""
    rows: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells[0]:
            name = cells[0]
            rows[name] = cells
        elif name:
            rows[name] = [f"{a} {b}".strip() for a, b in zip(rows[name], cells, strict=True)]
    return {k: " | ".join(v) for k, v in rows.items()}


def test_live_table_says_what_each_state_does_and_why() -> None:
    from rich.console import Console

    table = LiveTable(io.StringIO())
    for ev in EVENTS:
        table.event(ev)
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(table._render(_every_state()))
    text = console.export_text()
    assert text.splitlines()[0] == ("run r1: 3 running, 1 waiting, 1 retrying, 1 ok, 1 cached, "
                                    "1 failed, 1 pending")
    assert ("memory booked 4.6 GiB, available 20.0 GiB · box 24.0 GiB · 2.4 GiB always left free"
            " · booked by other runs: blut run big:fit (pid 4242) 6.0 GiB for fit") in text
    rows = _rows(text)
    assert rows["hog"] == ("hog | running | 1.50s | 200.0 MiB / 568.0 MiB cap | attempt 2 after "
                           "an OOM kill at its 128.0 MiB cap; cap raised 128.0 MiB → 568.0 MiB")
    assert rows["train"] == ("train | running | 12.50s | 1.2 GiB / 4.0 GiB cap | right-sized: "
                             "workers 64 → 3 to fit 3.1 GiB free (asked for 64.0 GiB); "
                             "step 10: loss=0.3142")
    assert rows["long"] == ("long | running | 1m01s | cap 2.0 GiB | soft timeout after 1m00s: "
                            "asked to stop (SIGTERM), 5.00s to do so")
    assert rows["flaky"] == ("flaky | retrying | in 4.20s |  | after an error (exit code 1: boom):"
                             " attempt 2 of 3 in 4.20s")
    assert rows["big"].startswith("big | waiting |  | needs 30.0 GiB | needs 30.0 GiB, 17.0 GiB free now")
    assert rows["big"].endswith("blut run big:fit (pid 4242) 6.0 GiB for fit")
    assert rows["prep"] == "prep | ok | 1.00s | peak 200.0 MiB / 1.0 GiB | peak 20% of its cap"
    assert rows["old"] == "old | cached |  |  | result from the cache"
    assert rows["eval"] == "eval | pending |  |  | after train, big"
    assert rows["bad"] == "bad | failed | 0.20s | peak 1.0 MiB / 128.0 MiB | exit code 1: ValueError: no"
    assert rows["after"] == "after | upstream_failed |  |  | input 'bad' failed"
    assert all(not row.endswith("| ") for row in rows.values()), "a note is empty"


def test_live_table_hides_rows_past_its_limit_and_counts_them() -> None:
    from rich.console import Console

    table = LiveTable(io.StringIO(), max_rows=3)
    snap = Snapshot(run_id="r", stages=tuple(StageView(name=f"s{i}", state="ok", elapsed=0.1)
                                             for i in range(10)))
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(table._render(snap))
    text = console.export_text()
    assert "… 7 more" in text and "7 ok" in text


def test_live_table_leaves_its_final_frame_on_screen() -> None:
    from rich.console import Console

    buf = io.StringIO()
    table = LiveTable(io.StringIO())
    table.console = Console(file=buf, force_terminal=True, width=120)
    running = Snapshot(run_id="r", stages=(StageView(name="prep", state="running", elapsed=0.5,
                                                      cap=GiB),))
    table.update(running)
    table.close(Snapshot(run_id="r", stages=(StageView(name="prep", state="ok", elapsed=1.0,
                                                        peak=200 * MiB, cap=GiB),)))
    raw = buf.getvalue()
    last = raw.rindex("peak 20% of its cap")
    assert "\x1b[2K" not in raw[last:], "the final frame is erased when the run ends"
    assert table.live is None


def test_a_table_that_never_started_prints_its_final_state() -> None:
    out = io.StringIO()
    table = LiveTable(out)
    table.close(Snapshot(run_id="r", stages=(StageView(name="a", state="cached"),)))
    assert "result from the cache" in out.getvalue()


def test_plain_lines_from_events_say_each_change_with_its_history() -> None:
    out = io.StringIO()
    sink = LogLines(out)
    for ev in EVENTS:
        sink.event(ev)
    lines = [line[9:] for line in out.getvalue().splitlines()]
    assert lines == [
        "running   hog (cap 128.0 MiB)",
        "failed    hog (0.30s; peak 128.0 MiB; killed by its memory cap of 128.0 MiB)",
        "retrying  hog (after an OOM kill at its 128.0 MiB cap: attempt 2 as soon as it is "
        "admitted, with a larger cap)",
        "running   hog (cap 568.0 MiB; attempt 2 after an OOM kill at its 128.0 MiB cap; cap raised"
        " 128.0 MiB → 568.0 MiB)",
        "running   train (cap 4.0 GiB; right-sized: workers 64 → 3 to fit 3.1 GiB free (asked for "
        "64.0 GiB); waited 12.00s for memory)",
        "running   flaky (cap 128.0 MiB)",
        "failed    flaky (0.30s; peak 1.0 MiB; exit code 1: boom)",
        "retrying  flaky (after an error (exit code 1: boom): attempt 2 of 3 in 5.00s)",
        "running   long (cap 2.0 GiB)",
        "stopping  long (soft timeout after 1m00s: asked to stop (SIGTERM), 5.00s to do so)",
    ]


def test_plain_lines_stop_quietly_when_the_stream_is_gone() -> None:
    out = io.StringIO()
    sink = LogLines(out)
    out.close()
    sink.event(EVENTS[1])
    sink.update(_snap())
    assert sink.gone
