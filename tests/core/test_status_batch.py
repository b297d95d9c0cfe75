"""The status stream's batches: one write for a loop turn's events, written even when the
turn raises, and what a killed driver leaves (whole lines, every event written before)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from blut_core.store.rundir import StatusLog, read_status


def _writes(monkeypatch: pytest.MonkeyPatch, log: StatusLog) -> list[int]:
    """The sizes of the write(2) calls made on ``log``'s stream from now on."""
    sizes: list[int] = []
    real = os.write

    def counting(fd: int, data: bytes) -> int:
        if fd == log._fd:
            sizes.append(len(data))
        return real(fd, data)

    monkeypatch.setattr(os, "write", counting)
    return sizes


def test_a_batch_writes_its_events_in_one_write_when_it_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "status.jsonl"
    log = StatusLog(path)
    log.append("run_started", recipe="r")
    writes = _writes(monkeypatch, log)
    before = path.stat().st_size
    with log.batch():
        log.append("stage_finished", stage="a", state="ok")
        with log.batch():  # nested: written with the outer one
            log.append("stage_admitted", stage="b", attempt=1)
        log.append("stage_started", stage="b", attempt=1, pid=123)
        assert path.stat().st_size == before and writes == []  # held until the batch ends
    assert len(writes) == 1
    events = read_status(path).events
    assert [e["event"] for e in events] == ["run_started", "stage_finished", "stage_admitted",
                                            "stage_started"]
    log.append("stage_finished", stage="b", state="ok")  # outside a batch: at once
    assert len(writes) == 2 and read_status(path).events[-1]["stage"] == "b"
    log.close()


def test_append_many_is_one_write_and_returns_the_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = StatusLog(tmp_path / "status.jsonl")
    writes = _writes(monkeypatch, log)
    records = log.append_many([("stage_admitted", {"stage": "a"}), ("stage_started", {"stage": "a"})])
    assert [r["event"] for r in records] == ["stage_admitted", "stage_started"]
    assert all(isinstance(r["t"], float) for r in records)
    assert len(writes) == 1
    assert read_status(tmp_path / "status.jsonl").events == records
    log.close()


def test_a_batch_that_raises_still_writes_its_events_and_flush_writes_early(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    log = StatusLog(path)
    with pytest.raises(KeyboardInterrupt), log.batch():
        log.append("stage_finished", stage="a", state="ok")
        log.flush()  # e.g. before launching a stage that reads a's output
        assert [e["stage"] for e in read_status(path).events] == ["a"]
        log.append("stage_finished", stage="b", state="ok")
        raise KeyboardInterrupt
    assert [e["stage"] for e in read_status(path).events] == ["a", "b"]
    with log.batch():
        log.append("stage_started", stage="c")
        log.sync()
        assert [e["stage"] for e in read_status(path).events] == ["a", "b", "c"]
    log.close()


_KILLED = """
import os, signal, sys
from pathlib import Path
from blut_core.store.rundir import StatusLog
log = StatusLog(Path(sys.argv[1]))
log.append("stage_finished", stage="a", state="ok", output_hash="h")
with log.batch():
    log.append("stage_finished", stage="b", state="ok", output_hash="h")
    log.flush()                       # written: the kernel holds it
    log.append("stage_started", stage="c", attempt=1)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_driver_killed_in_a_batch_keeps_every_event_it_had_written(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    r = subprocess.run([sys.executable, "-c", _KILLED, str(path)], capture_output=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == -signal.SIGKILL
    stream = read_status(path)
    assert stream.problem is None and not stream.torn
    assert [(e["event"], e["stage"]) for e in stream.events] == [("stage_finished", "a"),
                                                                 ("stage_finished", "b")]
    log = StatusLog(path)  # resume appends after them, on a line of its own
    log.append("run_resumed")
    assert [e["event"] for e in read_status(path).events][-1] == "run_resumed"
    log.close()
