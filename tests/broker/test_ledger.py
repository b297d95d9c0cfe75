"""The machine-wide ledger: bookings, reclaiming the dead, and two processes at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from blut_core import Ledger
from blut_core.broker.ledger import COMPACT_SLACK, Booking, default_ledger_path, process_start


def test_book_and_release(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.json")
    with ledger.transaction() as txn:
        a = txn.book(100, "a")
        txn.book(50, "b")
        assert txn.outstanding() == 150
    assert sorted(b.label for b in ledger.bookings()) == ["a", "b"]
    ledger.release(a.id)
    ledger.release(a.id)  # idempotent
    assert [b.label for b in ledger.bookings()] == ["b"]


def _write(path: Path, *bookings: Booking) -> None:
    path.write_text(json.dumps({"version": 1, "bookings": [b.to_json() for b in bookings]}))


def test_dead_and_reused_pids_are_reclaimed_on_read(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "ledger.json"
    _write(path,
           Booking(id="gone", bytes=1, label="gone", pid=dead.pid, start=1, created=0.0),
           Booking(id="reused", bytes=1, label="reused", pid=1, start=-5, created=0.0),
           Booking(id="gonecg", bytes=1, label="gonecg", pid=dead.pid, start=1, created=0.0,
                   cgroup=str(tmp_path / "no-such-cgroup")),
           Booking(id="live", bytes=7, label="live", pid=1, start=process_start(1), created=0.0))
    assert [b.id for b in Ledger(path).bookings()] == ["live"]
    assert [b["id"] for b in json.loads(path.read_text())["bookings"]] == ["live"]


def test_a_live_bookers_booking_outlives_its_stages_cgroup(tmp_path: Path) -> None:
    """A stage is uncaged as soon as it exits; its run releases the booking only once it has
    recorded the stage as finished. Until then no other process may take that memory."""
    holder = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start(holder.pid)
        empty = tmp_path / "empty-cgroup"
        empty.mkdir()
        (empty / "cgroup.procs").write_text("")
        path = tmp_path / "ledger.json"
        _write(path,
               Booking(id="gone", bytes=5, label="gone", pid=holder.pid, start=start,
                       created=0.0, cgroup=str(tmp_path / "no-such-cgroup")),
               Booking(id="empty", bytes=6, label="empty", pid=holder.pid, start=start,
                       created=0.0, cgroup=str(empty)))
        with Ledger(path).transaction() as txn:
            assert sorted(b.id for b in txn.bookings) == ["empty", "gone"]
            assert txn.outstanding() == 11
    finally:
        holder.kill()
        holder.wait()
    # once the booker is dead, the memory is free again
    assert Ledger(path).bookings() == []


def test_a_stage_that_outlived_its_driver_keeps_its_booking_until_it_ends(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = subprocess.Popen(["sleep", "60"])
    cage = tmp_path / "cage"
    cage.mkdir()
    (cage / "cgroup.procs").write_text(f"{orphan.pid}\n")
    path = tmp_path / "ledger.json"
    try:
        _write(path, Booking(id="orphan", bytes=9, label="orphan", pid=dead.pid, start=1,
                             created=0.0, cgroup=str(cage)))
        assert [b.id for b in Ledger(path).bookings()] == ["orphan"]
    finally:
        orphan.kill()
        orphan.wait()
    (cage / "cgroup.procs").write_text("")  # the stage ended: its cgroup is empty
    assert Ledger(path).bookings() == []


def test_a_torn_file_is_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("{")
    assert Ledger(path).bookings() == []


def test_default_path(tmp_path: Path) -> None:
    assert default_ledger_path({"BLUT_LEDGER": str(tmp_path / "x.json")}) == tmp_path / "x.json"
    assert default_ledger_path({}).name == "ledger.json"


_RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from blut_core import Budget, Ledger
    from blut_core.broker.admission import admit
    ledger = Ledger(Path(sys.argv[1]))
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    with ledger.transaction() as txn:
        budget = Budget(box=10_000, available=10_000, booked=txn.outstanding(), floor=1_000)
        a = admit("s", lambda d: 6_000, {}, {}, budget, lambda fp: 0)
        if a.launches:
            txn.book(a.footprint, sys.argv[3])
        time.sleep(0.05)
    print(a.decision)
""")


def test_two_processes_at_once_never_overbook(tmp_path: Path) -> None:
    import time

    path = tmp_path / "ledger.json"
    start = str(time.time() + 0.5)
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(path), start, f"p{i}"],
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    # the racers exit at once, so their bookings are read back without reclaiming
    path_text = None
    decisions = sorted(p.communicate(timeout=30)[0].strip() for p in procs)
    path_text = json.loads(path.read_text())
    assert decisions == ["admit", "wait"]
    assert sum(b["bytes"] for b in path_text["bookings"]) == 6_000


def test_shrinking_ledger_is_rewritten_in_place_and_compacted(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = Ledger(path)
    with ledger.transaction() as txn:
        ids = [txn.book(i, f"stage-{i}").id for i in range(100)]
    inode, full = path.stat().st_ino, path.stat().st_size
    ledger.release(ids[0])
    # written over in place (same file), padded to its old length, still one valid document
    assert path.stat().st_ino == inode and path.stat().st_size == full
    assert len(json.loads(path.read_text())["bookings"]) == 99
    # a fresh reader (another process) sees exactly what is booked
    assert len(Ledger(path).bookings()) == 99
    for booking_id in ids[1:]:
        ledger.release(booking_id)
    # once the padding outgrows the text, the file is compacted
    assert json.loads(path.read_text())["bookings"] == []
    assert path.stat().st_size <= len(path.read_text().strip()) + 1 + COMPACT_SLACK < full
