"""The calibration store on disk: a flush appends what it learnt, folds keep the store whole,
two processes learning at once both keep what they learnt, an old store is migrated."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

from blut_core import CalibrationKey, CalibrationStore
from blut_core.broker.calibration import MEASURED, OOM_CORRECTED
from blut_core.model.sizes import MiB


def _key(i: int, recipe: str = "book:r") -> CalibrationKey:
    return CalibrationKey.of(recipe, f"s{i % 200:03d}", {}, {"params": f"{i:08x}", "inputs": "0"})


def _filled(path: Path, n: int) -> None:
    store = CalibrationStore(path, flush_every=1e9)
    for i in range(n):
        store.record_peak(_key(i), (64 + i % 7) * MiB, 128 * MiB, seconds=0.5, inputs=0)
    store.flush()  # no snapshot yet: written whole, once


def _written() -> int:
    """Bytes this process has handed to write(2) so far (``wchar`` of /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def _learn_one(path: Path) -> int:
    """Bytes written by a run that looks up a known key, learns a new one and flushes."""
    store = CalibrationStore(path)
    assert store.get(_key(3)) is not None
    before = _written()
    store.record_peak(CalibrationKey.of("book:new", "s", {}), 10 * MiB, 20 * MiB)
    return _written() - before


def test_a_flush_writes_what_it_learnt_not_the_whole_store(tmp_path: Path) -> None:
    small, large = tmp_path / "small" / "calibration.json", tmp_path / "large" / "calibration.json"
    _filled(small, 50)
    _filled(large, 5000)
    snapshot = large.stat()
    spent = {"small": _learn_one(small), "large": _learn_one(large)}
    assert spent["large"] < 1024, spent                      # one journal line, not 1.4 MB
    assert abs(spent["large"] - spent["small"]) < 64, spent  # the same whatever the store holds
    after = large.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (snapshot.st_ino, snapshot.st_size, snapshot.st_mtime_ns)  # the snapshot is untouched
    journal = large.with_name("calibration.json.journal").read_bytes()
    assert journal.count(b"\n") == 2 and b"book:new|s|" in journal  # its header, one update
    again = CalibrationStore(large)
    assert again.get(CalibrationKey.of("book:new", "s", {})).peak == 10 * MiB  # type: ignore[union-attr]
    assert len(again.entries()) == 5001


def test_the_journal_is_folded_into_the_snapshot_once_it_has_grown(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    _filled(path, 10)
    store = CalibrationStore(path, fold_bytes=4096)
    for i in range(40):
        store.record_peak(_key(i), 80 * MiB, 128 * MiB)
    journal = path.with_name("calibration.json.journal")
    assert journal.stat().st_size <= 4096 + 512  # folded as it grew, never much past its limit
    data = json.loads(path.read_text())  # still a version-1 document an older blut reads
    assert data["version"] == 1 and len(data["entries"]) > 10
    again = CalibrationStore(path)
    assert len(again.entries()) == 40
    first = again.get(_key(0))
    assert first is not None and first.peak == 80 * MiB and first.samples == 2
    assert again.get(_key(39)).samples == 1  # type: ignore[union-attr]


def _learner(path: str, who: int, rounds: int) -> None:
    store = CalibrationStore(Path(path), fold_bytes=2048)  # folds often, while the other appends
    shared = CalibrationKey.of("book:r", "shared", {})
    for i in range(rounds):
        store.record_peak(shared, (who * 1000 + i + 1) * MiB, 8192 * MiB)
        store.record_peak(CalibrationKey.of("book:r", f"mine-{who}-{i}", {}), MiB, 2 * MiB)


def test_two_processes_learning_at_once_both_keep_what_they_learnt(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    CalibrationStore(path).record_oom(CalibrationKey.of("book:r", "bound", {}), 512 * MiB)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_learner, args=(str(path), who, 60)) for who in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = CalibrationStore(path)
    shared = store.get(CalibrationKey.of("book:r", "shared", {}))
    assert shared is not None and shared.samples == 120        # every update of both is kept
    assert shared.peak == (2 * 1000 + 60) * MiB
    names = {e.stage for e in store.entries()}
    assert {f"mine-{w}-{i}" for w in (1, 2) for i in range(60)} <= names
    assert store.get(CalibrationKey.of("book:r", "bound", {})).source == OOM_CORRECTED  # type: ignore[union-attr]


def test_an_old_store_is_read_and_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    old = {"version": 1, "entries": {
        "book:r|a|": {"recipe": "book:r", "stage": "a", "drivers": {}, "peak": 3 * MiB,
                      "source": "measured", "samples": 4, "updated": 1.0, "cap": 8 * MiB,
                      "seconds": 2.0, "inputs": 100},
        "book:r|b|n=2": {"recipe": "book:r", "stage": "b", "drivers": {"n": 2}, "peak": 9 * MiB,
                         "source": "oom_corrected", "samples": 1, "updated": 1.0,
                         "cap": 9 * MiB, "seconds": None}}}
    path.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")  # as blut wrote it before
    store = CalibrationStore(path)
    a = store.get(CalibrationKey.of("book:r", "a", {}))
    assert a is not None and (a.peak, a.samples, a.inputs) == (3 * MiB, 4, 100)
    store.record_peak(CalibrationKey.of("book:r", "c", {}), MiB, 2 * MiB)
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[1].startswith('"book:r|a|": ')  # one entry a line now
    data = json.loads(path.read_text())
    assert data["version"] == 1 and sorted(data["entries"]) == ["book:r|a|", "book:r|b|n=2",
                                                                "book:r|c|"]
    again = CalibrationStore(path)
    assert again.get(CalibrationKey.of("book:r", "b", {"n": 2})).source == OOM_CORRECTED  # type: ignore[union-attr]
    assert again.get(CalibrationKey.of("book:r", "a", {})).samples == 4  # type: ignore[union-attr]


def test_a_torn_journal_line_is_ignored_then_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    _filled(path, 3)
    key = CalibrationKey.of("book:r", "t", {})
    CalibrationStore(path).record_peak(key, 5 * MiB, 10 * MiB)
    journal = path.with_name("calibration.json.journal")
    with open(journal, "ab") as fh:  # what a writer killed in the middle of its line leaves
        fh.write(b'"book:r|t|": {"op":"peak","recipe":"book:r","st')
    store = CalibrationStore(path)
    assert store.get(key).peak == 5 * MiB  # type: ignore[union-attr]
    store.record_peak(key, 7 * MiB, 10 * MiB)
    assert journal.read_bytes().endswith(b"\n")
    for line in journal.read_text().splitlines()[1:]:
        assert json.loads("{" + line + "}")  # every line whole
    entry = CalibrationStore(path).get(key)
    assert entry is not None and (entry.peak, entry.samples, entry.source) == (7 * MiB, 2, MEASURED)


def test_a_fold_cut_short_never_counts_an_update_twice(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    _filled(path, 3)
    key = CalibrationKey.of("book:r", "f", {})
    CalibrationStore(path).record_peak(key, 5 * MiB, 10 * MiB)
    journal = path.with_name("calibration.json.journal")
    kept = tmp_path / "journal.before-fold"
    shutil.copyfile(journal, kept)
    folding = CalibrationStore(path, fold_bytes=0)  # folds once the journal is half the store
    n = 0
    while journal.exists():
        folding.record_peak(key, 6 * MiB, 10 * MiB)
        n += 1
        assert n < 50
    os.replace(kept, journal)  # killed after the new snapshot, before the journal's removal
    assert CalibrationStore(path).get(key).samples == 1 + n  # type: ignore[union-attr]
    CalibrationStore(path).record_peak(key, 4 * MiB, 10 * MiB)  # appends after the stale one
    entry = CalibrationStore(path).get(key)
    assert entry is not None and (entry.samples, entry.peak) == (2 + n, 6 * MiB)


def test_a_lookup_finds_its_own_key_only_whatever_the_key_holds(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    keys = [CalibrationKey.of("book:r", "s", {}), CalibrationKey.of("book:r", "s", {"n": 1}),
            CalibrationKey.of("book:r", 's"q\\b', {}), CalibrationKey.of("böök:r", "s", {"n": 2}),
            CalibrationKey.of("book:r", "s", {}, {"params": "p", "inputs": "1K"})]
    store = CalibrationStore(path)
    for n, key in enumerate(keys, 1):
        store.record_peak(key, n * MiB, 64 * MiB)       # the first: the snapshot; then the journal
    store.record_oom(keys[2], 96 * MiB)
    again = CalibrationStore(path)
    found = [again.get(key) for key in keys]
    assert [e.peak for e in found if e] == [1 * MiB, 2 * MiB, 96 * MiB, 4 * MiB, 5 * MiB]
    assert found[2] is not None and found[2].source == OOM_CORRECTED
    listed = {e.key.text: (e.peak, e.source) for e in CalibrationStore(path).entries()}
    assert listed == {e.key.text: (e.peak, e.source) for e in found if e}
    journal, folding = path.with_name("calibration.json.journal"), CalibrationStore(path, fold_bytes=0)
    while journal.exists():  # folded once the journal outgrows half of the snapshot
        folding.record_peak(CalibrationKey.of("book:r", "filler", {}), MiB, 64 * MiB)
    folded = CalibrationStore(path)
    assert [folded.get(key).peak for key in keys] == [e.peak for e in found if e]  # type: ignore[union-attr]


def test_a_snapshot_damaged_in_the_middle_is_set_aside_when_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    _filled(path, 3)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'"book:r|s001||inputs=0,params=00000001": {"recipe": \xff garbage'
    path.write_bytes(b"\n".join(lines))
    store = CalibrationStore(path)
    assert store.get(_key(0)) is not None  # a lookup reads only its own line
    assert store.entries() == []           # listing reads them all: the snapshot is set aside
    assert len(list(tmp_path.glob("calibration.json.corrupt-*"))) == 1
    store.record_peak(_key(7), MiB, 2 * MiB)
    assert [e.key.text for e in CalibrationStore(path).entries()] == [_key(7).text]
