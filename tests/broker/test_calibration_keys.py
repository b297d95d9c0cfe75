"""A peak measured on a small workload never caps a large one: calibration keys hold what
drives memory, and a calibrated value never lowers a cap below the declaration for a key it
was not measured on."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut_core import (
    App,
    BrokerConfig,
    CalibrationKey,
    CalibrationStore,
    Footprint,
    Stage,
)
from blut_core.broker.calibration import MEASURED, merge_peak, resolve
from blut_core.broker.resolve import Estimator, size_bucket
from blut_core.model.sizes import GiB, MiB
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events
from tests.broker import stages_mem


def _estimator(app: App, tmp: Path, outputs: dict[str, Path] | None = None) -> Estimator:
    est = Estimator(app.registry, "memtest:x", CalibrationStore(tmp / "calibration.json"),
                    BrokerConfig())
    if outputs is not None:
        est.outputs = outputs.__getitem__
    return est


def test_declared_drivers_are_the_key_and_nothing_else(app: App, tmp_path: Path) -> None:
    stage = Stage.call("train", stages_mem.hog, params={"mb": 1},
                       footprint=Footprint.scaling("1G", {"workers": "1G"}, drivers={"workers": 4}))
    key = _estimator(app, tmp_path).key(stage, {"workers": 4})
    assert key.scope == () and key.text == "memtest:x|train|workers=4"


def test_without_drivers_the_params_are_in_the_key(app: App, tmp_path: Path) -> None:
    est = _estimator(app, tmp_path)
    small = Stage.call("s", stages_mem.hog, params={"mb": 16}, footprint=Footprint.fixed("1G"))
    large = Stage.call("s", stages_mem.hog, params={"mb": 4096}, footprint=Footprint.fixed("1G"))
    bare = Stage.call("s", stages_mem.hog)
    assert est.key(small, {}) != est.key(large, {})
    assert dict(est.key(small, {}).scope).keys() == {"params"}
    assert est.key(bare, {}).text == "memtest:x|s|"  # nothing else to key on: as before


def test_without_drivers_the_bytes_read_are_in_the_key(app: App, tmp_path: Path) -> None:
    out = tmp_path / "make-out"
    out.mkdir()
    (out / "data.bin").write_bytes(b"x" * (1 << 20))
    stage = Stage.call("read", stages_mem.read_input, inputs=["make"])
    before_run = _estimator(app, tmp_path)
    assert before_run.input_bytes(stage) is None and before_run.key(stage, {}).scope == ()
    small = _estimator(app, tmp_path, {"make": out})
    assert small.input_bytes(stage) == 1 << 20
    assert dict(small.key(stage, {}).scope) == {"inputs": "1.0MiB"}
    (out / "more.bin").write_bytes(b"x" * (9 << 20))
    large = _estimator(app, tmp_path, {"make": out})
    assert dict(large.key(stage, {}).scope) == {"inputs": "11.3MiB"}
    # a file or directory a param names counts as read too
    named = Stage.call("scan", stages_mem.hog, params={"path": str(out)})
    assert dict(large.key(named, {}).scope)["inputs"] == "11.3MiB"


def test_size_buckets_are_half_powers_of_two() -> None:
    assert size_bucket(0) == "0B" and size_bucket(1 << 30) == "1.0GiB"
    assert size_bucket((1 << 30) + 1) == "1.4GiB" and size_bucket(int(1.41 * (1 << 30))) == "1.4GiB"
    assert size_bucket(int(1.42 * (1 << 30))) == "2.0GiB"


def test_a_peak_is_never_below_the_declaration_for_more_bytes_than_it_was_measured_on() -> None:
    key = CalibrationKey.of("r", "s", {}, {"inputs": "1.0GiB"})
    small = merge_peak(None, key, 100 * MiB, 2 * GiB, now=1.0, inputs=600 << 20)
    assert (small.source, small.inputs) == (MEASURED, 600 << 20)
    same = resolve(small, 2 * GiB, ceiling=20 * GiB, factor=2.0, step=GiB, inputs=600 << 20)
    assert same.bytes == 100 * MiB                     # measured on these inputs: trusted
    more = resolve(small, 2 * GiB, ceiling=20 * GiB, factor=2.0, step=GiB, inputs=900 << 20)
    assert more.bytes == 2 * GiB and more.source == MEASURED   # same bucket, more bytes
    other = resolve(small, 2 * GiB, ceiling=20 * GiB, factor=2.0, step=GiB, foreign=True)
    assert other.bytes == 2 * GiB                      # an entry of a broader key


def test_an_entry_kept_before_keys_had_scopes_only_raises_a_footprint(app: App,
                                                                       tmp_path: Path) -> None:
    est = _estimator(app, tmp_path)
    stage = Stage.call("s", stages_mem.hog, params={"mb": 512}, footprint=Footprint.fixed("1G"))
    est.store.record_peak(CalibrationKey.of("memtest:x", "s", {}), 64 * MiB, 2 * GiB)
    assert est.resolve(stage, {}, box=24 * GiB, floor=2 * GiB).bytes == GiB
    est.store.record_peak(CalibrationKey.of("memtest:x", "s", {}), 3 * GiB, 4 * GiB)
    assert est.resolve(stage, {}, box=24 * GiB, floor=2 * GiB).bytes == 3 * GiB


def _admitted(run_dir: Path, stage: str) -> list[dict[str, object]]:
    return [e for e in read_events(run_dir / "status.jsonl")
            if e["event"] == "stage_admitted" and e["stage"] == stage]


@pytest.mark.cgroup
def test_a_small_input_run_never_caps_a_large_one(app: App, caged: str) -> None:
    # read holds twice its input; it declares 768 MiB
    small = start_run(app, prepare(app, "memtest:grows", overrides=["input_mb=16"]))
    assert small.outcome == "ok"
    again = start_run(app, prepare(app, "memtest:grows", overrides=["input_mb=16"]))
    [adm] = _admitted(again.run_dir, "read")
    assert adm["source"] == "measured" and int(adm["footprint_bytes"]) < 128 * MiB  # type: ignore[call-overload]

    large = start_run(app, prepare(app, "memtest:grows", overrides=["input_mb=300"]))
    assert large.outcome == "ok"
    [adm] = _admitted(large.run_dir, "read")
    assert adm["footprint_bytes"] == 768 * MiB and adm["source"] == "model"
    assert adm["input_bytes"] == 300 * MiB
    assert {s.stage: s.attempt for s in large.stages}["read"] == 1   # no OOM kill


@pytest.mark.cgroup
def test_a_small_params_run_never_caps_a_large_one(app: App, caged: str) -> None:
    small = start_run(app, prepare(app, "memtest:hog", overrides=["mb=32", "declared=512M"]))
    assert small.outcome == "ok"
    large = start_run(app, prepare(app, "memtest:hog", overrides=["mb=400", "declared=512M"]))
    [adm] = _admitted(large.run_dir, "hog")
    assert adm["footprint_bytes"] == 512 * MiB and large.stages[0].attempt == 1
