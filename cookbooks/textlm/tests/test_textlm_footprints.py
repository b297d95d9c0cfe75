"""Predicted training footprints against peaks measured in fresh processes.

Training runs in its own interpreter (``python -m blut_cookbook_textlm.peak``) at two or
more values of batch, context and hidden, writing a JSON checkpoint every step as a blut
stage does; the kernel's peak resident set of that process is read at the end. A prediction
must never be below the measured peak, and at the median at most 1.5 times it. Run with
``-s`` to see the figures.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from blut_cookbook_textlm import footprints as fp
from blut_cookbook_textlm.corpus import Vocabulary, load_text
from blut_cookbook_textlm.peak import measure
from blut_cookbook_textlm.train import TrainParams

GRID = [(32, 64, 64), (256, 64, 64), (32, 512, 64), (32, 64, 512), (128, 256, 128), (64, 128, 256)]


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int, int]]:
    tmp = tmp_path_factory.mktemp("lm")
    vocab = len(Vocabulary.of(load_text()))

    def train_point(g: tuple[int, int, int]) -> tuple[str, int, int]:
        b, t, h = g
        p = TrainParams(batch=b, context=t, hidden=h, steps=2, eval_every=0, checkpoint_every=1)
        args = {"params": {"batch": b, "context": t, "hidden": h, "steps": 2, "eval_every": 0,
                           "checkpoint_every": 1},
                "checkpoint": str(tmp / f"ck{b}_{t}_{h}.json")}
        return f"train batch={b} context={t} hidden={h}", fp.train_footprint(p, vocab), \
            measure("train", args).peak

    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(train_point, GRID))
    for h in (64, 512):
        ck = tmp / f"ck32_64_{h}.json"
        rows.append((f"sample hidden={h}", fp.sample_footprint(h, vocab),
                     measure("sample", {"checkpoint": str(ck), "length": 300}).peak))
    return rows


def test_prediction_covers_the_measured_peak_and_is_not_far_above(
        measured: list[tuple[str, int, int]]) -> None:
    for step in ("train", "sample"):
        rows = [r for r in measured if r[0].startswith(step)]
        ratios = [predicted / peak for _, predicted, peak in rows]
        print(f"\n{step}: median ratio {statistics.median(ratios):.2f}, minimum {min(ratios):.2f}")
        for label, predicted, peak in rows:
            print(f"  {label:<40} predicted {predicted / fp.MiB:7.1f} MiB  measured {peak / fp.MiB:7.1f} MiB"
                  f"  ratio {predicted / peak:.2f}")
        assert min(ratios) >= 1.0, rows
        assert statistics.median(ratios) <= 1.5, rows


def test_the_measured_peak_grows_with_batch_context_and_hidden(measured: list[tuple[str, int, int]]) -> None:
    peak = {label: p for label, _, p in measured}
    small = peak["train batch=32 context=64 hidden=64"]
    for bigger in ("train batch=256 context=64 hidden=64", "train batch=32 context=512 hidden=64",
                   "train batch=32 context=64 hidden=512"):
        assert peak[bigger] > small + 8 * fp.MiB, bigger


def test_predictions_are_monotone_in_every_driver() -> None:
    for spec in (fp.TRAIN, fp.SAMPLE):
        names = spec.drivers_used()
        base = dict.fromkeys(names, 3)
        for name in names:
            assert spec.predict({**base, name: 4}) >= spec.predict(base)
            assert spec.predict({**base, name: 400}) >= spec.predict({**base, name: 4})
    decl = fp.TRAIN.declaration(runtime=1)
    assert decl == {"base": 40 * fp.MiB + 1, "terms": {
        "batch*context*hidden": 8, "batch*context*vocab": 10, "hidden*hidden": 80, "vocab*hidden": 80,
        "batch*hidden": 48}}
    assert fp.train_drivers(TrainParams(batch=4, context=5, hidden=6), 77) == {
        "batch": 4, "context": 5, "hidden": 6, "vocab": 77}


def test_checkpoints_written_by_the_measurement_are_complete(tmp_path: Path) -> None:
    ck = tmp_path / "ck.json"
    measure("train", {"params": {"batch": 4, "context": 16, "hidden": 8, "steps": 3, "eval_every": 0},
                      "checkpoint": str(ck)})
    import json

    from blut_cookbook_textlm.train import TrainState

    state = TrainState.from_dict(json.loads(ck.read_text()))
    assert state.step == 3 and state.hidden == 8
