"""Calibration: merge rules, escalation, the box clamp, and a corrupt file."""

from __future__ import annotations

import json
from pathlib import Path

from blut_core import CalibrationKey, CalibrationStore
from blut_core.broker.calibration import (
    MEASURED,
    OOM_CORRECTED,
    escalate,
    merge_oom,
    merge_peak,
    resolve,
)
from blut_core.model.sizes import GiB, MiB

KEY = CalibrationKey.of("book:recipe", "train", {"workers": 2, "batch": 32})


def test_key_sorts_drivers() -> None:
    assert KEY.text == "book:recipe|train|batch=32,workers=2"
    assert CalibrationKey.of("r", "s", {}).text == "r|s|"


def test_measured_merges_by_max() -> None:
    e = merge_peak(None, KEY, 3 * GiB, 4 * GiB, now=1.0)
    assert (e.source, e.peak, e.samples) == (MEASURED, 3 * GiB, 1)
    e = merge_peak(e, KEY, 2 * GiB, 4 * GiB, now=2.0)
    assert (e.peak, e.samples) == (3 * GiB, 2)
    e = merge_peak(e, KEY, 5 * GiB, 6 * GiB, now=3.0)
    assert e.peak == 5 * GiB


def test_oom_records_the_cap_as_a_lower_bound_and_outranks_measured() -> None:
    e = merge_peak(None, KEY, 3 * GiB, 4 * GiB, now=1.0)
    e = merge_oom(e, KEY, 4 * GiB, now=2.0)
    assert (e.source, e.peak) == (OOM_CORRECTED, 4 * GiB)
    e = merge_oom(e, KEY, 3 * GiB, now=3.0)  # a lower kill never lowers the bound
    assert e.peak == 4 * GiB


def test_a_clean_run_well_under_its_cap_replaces_a_stale_bound() -> None:
    bound = merge_oom(None, KEY, 8 * GiB, now=1.0)
    healed = merge_peak(bound, KEY, 5 * GiB, 10 * GiB, now=2.0)     # 50 % of its cap
    assert (healed.source, healed.peak) == (MEASURED, 5 * GiB)
    rode = merge_peak(bound, KEY, 9 * GiB + 512 * MiB, 10 * GiB, now=2.0)  # ≥ 90 %: keep it
    assert (rode.source, rode.peak) == (OOM_CORRECTED, 9 * GiB + 512 * MiB)


def test_escalation_and_clamp() -> None:
    assert escalate(8 * GiB, factor=1.25, step=GiB) == 10 * GiB
    assert escalate(GiB, factor=1.25, step=GiB) == 2 * GiB
    bound = merge_oom(None, KEY, 8 * GiB, now=1.0)
    r = resolve(bound, 4 * GiB, ceiling=20 * GiB, factor=1.25, step=GiB)
    assert (r.bytes, r.source, r.bound, r.exhausted) == (10 * GiB, OOM_CORRECTED, 8 * GiB, False)
    r = resolve(bound, 12 * GiB, ceiling=20 * GiB, factor=1.25, step=GiB)
    assert r.bytes == 12 * GiB                       # never below the model
    r = resolve(bound, 4 * GiB, ceiling=9 * GiB, factor=1.25, step=GiB)
    assert (r.bytes, r.exhausted) == (9 * GiB, False)  # clamped: one last try at the ceiling
    r = resolve(merge_oom(None, KEY, 9 * GiB, now=1.0), 4 * GiB, ceiling=9 * GiB, factor=1.25, step=GiB)
    assert r.exhausted and r.bound == 9 * GiB


def test_resolve_sources() -> None:
    assert resolve(None, GiB, ceiling=10 * GiB, factor=1.25, step=GiB).source == "model"
    measured = merge_peak(None, KEY, 300 * MiB, GiB, now=1.0)
    r = resolve(measured, GiB, ceiling=10 * GiB, factor=1.25, step=GiB)
    assert (r.bytes, r.source, r.calibrated) == (300 * MiB, MEASURED, 300 * MiB)


def test_store_round_trip_and_forget(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    store = CalibrationStore(path)
    store.record_peak(KEY, GiB, 2 * GiB)
    other = CalibrationKey.of("book:other", "s", {})
    store.record_oom(other, 512 * MiB)
    again = CalibrationStore(path)
    assert again.get(KEY).peak == GiB  # type: ignore[union-attr]
    assert again.get(other).source == OOM_CORRECTED  # type: ignore[union-attr]
    assert json.loads(path.read_text())["version"] == 1
    assert not list(tmp_path.glob(".*.tmp"))
    gone = again.forget(lambda e: e.recipe == "book:other")
    assert [e.stage for e in gone] == ["s"] and CalibrationStore(path).get(other) is None


def test_corrupt_file_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text("{ not json", encoding="utf-8")
    store = CalibrationStore(path)
    assert store.get(KEY) is None
    assert len(list(tmp_path.glob("calibration.json.corrupt-*"))) == 1
    store.record_peak(KEY, GiB, 2 * GiB)
    assert CalibrationStore(path).get(KEY).peak == GiB  # type: ignore[union-attr]
    path.write_text(json.dumps({"version": 1, "entries": {"x": {"source": "bogus"}}}))
    assert CalibrationStore(path).entries() == []


def test_in_memory_store_learns_within_a_run_only(tmp_path: Path) -> None:
    store = CalibrationStore(None)
    store.record_oom(KEY, GiB)
    assert store.get(KEY).peak == GiB  # type: ignore[union-attr]
    assert list(tmp_path.iterdir()) == []
