"""Progress of real runs: every state change printed from events, a wait for memory shown
while nothing runs, an OOM kill and its retry with both caps, live memory from the cgroup."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from importlib import metadata as md
from pathlib import Path
from typing import Any

import attrs
import pytest

from blut_core import App, ExecOptions
from blut_core.broker.ledger import Ledger, process_start
from blut_core.broker.machine import probe
from blut_core.broker.select import select_containment
from blut_core.model.sizes import GiB
from blut_core.run.orchestrate import prepare, start_run
from blut_core.run.progress import LiveTable, LogLines, Snapshot
from blut_core.testing import COOKBOOK_GROUP, entry_points_of
from tests.support.cli import run_blut

TESTBOOK = md.EntryPoint(name="testbook", value="tests.support.cookbook", group=COOKBOOK_GROUP)
MEMTEST = md.EntryPoint(name="memtest", value="tests.broker.memcook", group=COOKBOOK_GROUP)
LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<state>\S+)\s+(?P<stage>\S+)(?: \((?P<detail>.*)\))?$")


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, MEMTEST, *entry_points_of("blut-cookbook-quickstart", COOKBOOK_GROUP)]


@pytest.fixture(autouse=True)
def private_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own booking ledger, and the broker's default settings."""
    path = tmp_path / "ledger" / "ledger.json"
    monkeypatch.setenv("BLUT_LEDGER", str(path))
    for name in ("BLUT_CONTAINMENT", "BLUT_NO_CALIBRATION", "BLUT_FLOOR", "BLUT_HEADROOM",
                 "BLUT_ESCALATION_STEP", "BLUT_DEFAULT_FOOTPRINT", "BLUT_ADMISSION_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return path


class Tee:
    """A sink that records snapshots and passes everything on to the sinks it wraps."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks
        self.snaps: list[Snapshot] = []

    def event(self, record: Mapping[str, Any]) -> None:
        for s in self.sinks:
            s.event(record)

    def update(self, snapshot: Snapshot) -> None:
        self.snaps.append(snapshot)
        for s in self.sinks:
            s.update(snapshot)

    def close(self, snapshot: Snapshot) -> None:
        self.snaps.append(snapshot)
        for s in self.sinks:
            s.close(snapshot)


def _lines(out: io.StringIO) -> list[tuple[str, str, str]]:
    found = []
    for text in out.getvalue().splitlines():
        m = LINE.match(text)
        assert m, f"not a progress line: {text!r}"
        found.append((m["state"], m["stage"], m["detail"] or ""))
    return found


def test_plain_lines_give_every_stage_its_running_and_finished_line(app: App) -> None:
    out = io.StringIO()
    summary = start_run(app, prepare(app, "testbook:diamond"), progress=LogLines(out))
    assert summary.outcome == "ok"
    lines = _lines(out)
    for stage in ("a", "b", "c", "d", "e"):  # each takes a few ms: no sampling would catch them
        mine = [state for state, name, _ in lines if name == stage]
        assert mine == ["running", "ok"], (stage, out.getvalue())
    running_a = lines.index(next(x for x in lines if x[:2] == ("running", "a")))
    ok_a = lines.index(next(x for x in lines if x[:2] == ("ok", "a")))
    first_b = min(i for i, x in enumerate(lines) if x[1] in ("b", "c"))
    assert running_a < ok_a < first_b  # in the order they happened
    assert all(re.match(r"cap \d", detail) for state, _, detail in lines if state == "running")


def test_a_retried_stage_reads_as_failed_then_retrying_then_ok(app: App) -> None:
    out = io.StringIO()
    summary = start_run(app, prepare(app, "testbook:flaky"), progress=LogLines(out))
    assert summary.outcome == "ok"
    assert [(s, n) for s, n, _ in _lines(out)] == [
        ("running", "f"), ("failed", "f"), ("retrying", "f"), ("running", "f"), ("ok", "f")]
    details = [d for _, _, d in _lines(out)]
    assert "transient failure" in details[1]
    assert "attempt 2 of 2" in details[2]
    assert "attempt 2 after an error (transient failure)" in details[3]
    assert "on attempt 2" in details[4]


def _hold_all_memory(ledger_path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Book more than the machine has available on behalf of another live process (``sleep``),
    as another run would; the booking is reclaimed when that process ends."""
    holder = subprocess.Popen(["sleep", "60"])
    deadline = time.monotonic() + 5
    while process_start(holder.pid) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    ledger = Ledger(ledger_path)
    with ledger.transaction() as txn:
        booking = txn.book(probe().available + GiB, "train")
        txn.bookings[-1] = attrs.evolve(booking, pid=holder.pid, start=process_start(holder.pid))
    def release() -> None:  # a zombie still holds its booking: reap it
        holder.kill()
        holder.wait()

    threading.Timer(seconds, release).start()
    return holder


def test_a_stage_waiting_for_memory_with_nothing_running_is_shown_with_who_booked_it(
        app: App, private_ledger: Path) -> None:
    out = io.StringIO()
    table = LiveTable(io.StringIO())
    tee = Tee(LogLines(out), table)
    holder = _hold_all_memory(private_ledger, 1.5)
    try:
        summary = start_run(app, prepare(app, "memtest:hog", overrides=["mb=16"]),
                            no_calibration=True, progress=tee, options=ExecOptions(deadline=60))
    finally:
        holder.kill()
        holder.wait()
    assert summary.outcome == "ok"
    waiting = [s for s in tee.snaps if any(v.state == "waiting" for v in s.stages)]
    assert len(waiting) >= 3, "the display went silent while the stage waited"  # ~4 a second
    view = next(v for v in waiting[-1].stages if v.name == "hog")
    assert re.search(r"needs 64\.0 MiB, 0 B free now \(.* available − .* booked − .* floor\)",
                     view.note), view.note
    assert f"sleep 60 (pid {holder.pid})" in view.note and "for train" in view.note
    lines = _lines(out)
    assert [s for s, n, _ in lines if n == "hog"] == ["waiting", "running", "ok"]
    assert f"booked: sleep 60 (pid {holder.pid})" in lines[0][2]
    assert re.search(r"waited \d+\.\d+s for memory", lines[1][2])
    # the live table says the same while it waits, with the box and the other run's booking
    from rich.console import Console

    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(table._render(waiting[-1]))
    text = console.export_text()
    assert "waiting" in text and "needs 64.0 MiB" in text
    assert f"booked by other runs: sleep 60 (pid {holder.pid})" in text


def test_long_waits_and_long_stages_get_reminder_lines() -> None:
    from blut_core.run.progress import StageView

    out = io.StringIO()
    sink = LogLines(out, remind_every=0.05)
    waiting = Snapshot(run_id="r", stages=(StageView(name="big", state="waiting",
                                                      note="needs 30.0 GiB, 1.0 GiB free now"),))
    sink.update(waiting)
    sink.update(waiting)
    time.sleep(0.06)
    sink.update(waiting)
    lines = _lines(out)
    assert [s for s, _, _ in lines] == ["waiting", "waiting"]
    assert lines[1][2].startswith("for 0.") and "needs 30.0 GiB" in lines[1][2]


def test_log_lines_never_land_inside_or_ahead_of_progress_lines(tmp_path: Path) -> None:
    r = run_blut("-v", "--log-format", "json", "run", "testbook:failing", home=tmp_path / "h",
                 tmp=tmp_path)
    assert r.returncode == 1, r.stderr
    order = []
    for text in r.stderr.splitlines():
        if text.startswith("{"):
            order.append(("log", json.loads(text)["event"], json.loads(text).get("stage")))
        else:
            m = LINE.match(text)
            assert m, f"neither a progress line nor a log line: {text!r}"
            order.append(("progress", m["state"], m["stage"]))
    assert order.index(("progress", "failed", "bad")) < order.index(("log", "stage_failed", "bad"))
    assert order.index(("progress", "upstream_failed", "after")) < \
        order.index(("log", "stage_upstream_failed", "after"))
    assert order.index(("progress", "ok", "a")) < order.index(("log", "stage_ok", "a"))


@pytest.fixture
def caged(app: App) -> Iterator[str]:
    sel = select_containment(app.registry, os.environ)
    if not (sel.containment.enforces and sel.containment.kernel_evidence):
        pytest.skip("no cgroup containment backend is usable here")
    yield sel.name


@pytest.mark.cgroup
def test_an_oom_kill_and_its_retry_read_as_such_with_the_old_and_new_caps(
        app: App, caged: str) -> None:
    out = io.StringIO()
    table = LiveTable(io.StringIO())
    tee = Tee(LogLines(out), table)
    summary = start_run(app, prepare(app, "memtest:hog", overrides=["mb=192", "declared=64M"]),
                        no_calibration=True, progress=tee)
    assert summary.outcome == "ok", summary
    lines = [(s, d) for s, n, d in _lines(out) if n == "hog"]
    states = [s for s, _ in lines]
    assert states[:4] == ["running", "failed", "retrying", "running"] and states[-1] == "ok"
    old = re.match(r"cap (\d+\.\d \w+)", lines[0][1])
    assert old, lines[0]
    assert f"killed by its memory cap of {old[1]}" in lines[1][1]
    assert lines[2][1] == (f"after an OOM kill at its {old[1]} cap: attempt 2 as soon as it is "
                           "admitted, with a larger cap")
    new = re.match(r"cap (\d+\.\d \w+); attempt 2 after an OOM kill at its (.+) cap; "
                   r"cap raised (.+) → (.+)$", lines[3][1])
    assert new and new[2] == new[3] == old[1] and new[4] == new[1] != old[1], lines[3]
    assert "on attempt 2, after an OOM kill" in lines[-1][1]
    # the table's final frame says so too
    final = tee.snaps[-1]
    hog = next(v for v in final.stages if v.name == "hog")
    assert table.history.note(hog).startswith(f"on attempt 2, after an OOM kill at its {old[1]} cap")


@pytest.mark.cgroup
def test_the_memory_column_shows_live_use_against_the_cap(app: App, caged: str) -> None:
    tee = Tee(LiveTable(io.StringIO()))
    summary = start_run(app, prepare(app, "testbook:memload", overrides=[
        "stages=1", "footprint=512M", "mb=96", "seconds=1.5"]), progress=tee)
    assert summary.outcome == "ok"
    running = [v for s in tee.snaps for v in s.stages if v.state == "running" and v.live]
    assert running, "no running snapshot read the stage's cgroup"
    held = max(running, key=lambda v: v.live or 0)
    assert held.live is not None and 90 << 20 <= held.live <= held.cap  # type: ignore[operator]
    cell = tee.sinks[0].history.memory(held)
    assert re.fullmatch(r"\d+\.\d MiB / 5\d\d\.\d MiB cap", cell), cell
