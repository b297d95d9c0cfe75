"""Declared footprints against the peaks blut measures, and the declarations' form.

``textlm:small`` runs through blut (each stage in its own memory cgroup, as ``blut run``
runs it) at two sizes of every driver, and each attempt's kernel-measured peak is read back
next to what its declaration gives at the drivers it ran with. No peak may be above its
declaration, and at the median a declaration may be at most 1.5 times its peak. Every stage
runs in a fresh fork of the launcher's server (``BLUT_REUSE_WORKERS=0``): the most a stage
needs, which the declarations are for (a reused worker has some of it resident already, so
its peaks are lower still). Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest
from blut_cookbook_textlm import footprints as fp
from blut_cookbook_textlm.train import TrainParams

from blut_core import App
from blut_core.testing import PeakCheck, declared_peaks

pytestmark = pytest.mark.blut(cookbooks=["textlm"])

#: Two sizes of each driver (batch, context, hidden; the vocabulary is the shipped text's).
SIZES = ({"batch": 8, "context": 32, "hidden": 32}, {"batch": 64, "context": 128, "hidden": 192})
MAX_MEDIAN_RATIO = 1.5


@pytest.fixture
def checks(app: App, run_recipe: Any, monkeypatch: pytest.MonkeyPatch) -> list[PeakCheck]:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "0")
    out: list[PeakCheck] = []
    for size in SIZES:
        summary = run_recipe("textlm:small", lrs=[0.003, 0.01], steps=6, checkpoint_every=2,
                             eval_every=3, sample={"length": 200, "count": 2}, **size)
        assert summary.outcome == "ok"
        out += declared_peaks(app, summary)
    return out


def _table(checks: list[PeakCheck]) -> str:
    return "\n".join(f"  {c.stage:<16} {dict(c.drivers)}  "
                     f"declared {(c.declared_bytes or 0) / fp.MiB:6.1f} MiB  "
                     f"peak {(c.peak_bytes or 0) / fp.MiB:6.1f} MiB  ratio {c.ratio or 0:.2f}"
                     for c in checks)


def test_every_peak_is_within_its_declaration_and_not_far_below_it(checks: list[PeakCheck]) -> None:
    if any(c.peak_bytes is None for c in checks):
        pytest.skip("the containment in use reports no peak")
    print("\n" + _table(checks))
    assert len(checks) == 8
    assert all(c.peak_bytes is not None and c.declared_bytes is not None
               and c.peak_bytes <= c.declared_bytes for c in checks), _table(checks)
    ratios = [c.ratio for c in checks if c.ratio is not None]
    assert statistics.median(ratios) <= MAX_MEDIAN_RATIO, _table(checks)
    # the peaks follow the drivers: the larger model's training holds megabytes more
    train = {c.drivers["hidden"]: c.peak_bytes or 0 for c in checks if c.stage.startswith("train")}
    assert train[192] > train[32] + 4 * fp.MiB


def test_predictions_are_monotone_in_every_driver() -> None:
    for spec in (fp.TRAIN, fp.SAMPLE):
        names = spec.drivers_used()
        base = dict.fromkeys(names, 3)
        for name in names:
            assert spec.predict({**base, name: 4}) >= spec.predict(base)
            assert spec.predict({**base, name: 400}) >= spec.predict({**base, name: 4})
    decl = fp.TRAIN.declaration(runtime=1)
    assert decl == {"base": fp.TRAIN.base + 1, "terms": {
        "batch*context*hidden": {"per": 61, "every": 10}, "batch*context*vocab": {"per": 88, "every": 10},
        "hidden*hidden": 96, "vocab*hidden": 115}}
    assert fp.train_drivers(TrainParams(batch=4, context=5, hidden=6), 77) == {
        "batch": 4, "context": 5, "hidden": 6, "vocab": 77}
