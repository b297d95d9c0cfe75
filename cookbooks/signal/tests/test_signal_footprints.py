"""Declared footprints against the peaks blut measures, and the declarations' form.

``signal:tiny`` runs through blut (each stage in its own memory cgroup, as ``blut run`` runs
it) with two sets of params that take every driver of every step to two sizes — channels,
chunk and taps; workers, prefetch, window and hop; the codecs' rows, spatial and temporal
components, window, bits and codebook — and each attempt's kernel-measured peak is read back
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
from blut_cookbook_signal import footprints as fp
from blut_cookbook_signal.codec import CodecConfig
from blut_cookbook_signal.features import FeatureParams

from blut_core import App
from blut_core.testing import PeakCheck, declared_peaks

pytestmark = pytest.mark.blut(cookbooks=["signal"])

MAX_MEDIAN_RATIO = 1.5


def _codec(**kw: Any) -> dict[str, Any]:
    return {"kmeans_passes": 1, **kw}


#: Two sizes of every driver.
RUNS: tuple[dict[str, Any], ...] = (
    {"signal": {"channels": 16, "duration_s": 300.0, "fs": 128.0, "chunk_s": 4.0},
     "features": {"window": 256, "hop": 32, "workers": 1, "prefetch": 600},
     "codecs": [_codec(window=32, spatial=4, temporal=8, bits=4, batch=1024),
                _codec(window=32, spatial=4, temporal=8, quantizer="vq", codebook=256, batch=512)]},
    {"signal": {"channels": 32, "duration_s": 300.0, "fs": 256.0, "chunk_s": 8.0},
     "features": {"window": 512, "hop": 0, "workers": 2, "prefetch": 16},
     "codecs": [_codec(window=64, spatial=12, temporal=16, bits=8, batch=2048),
                _codec(window=64, spatial=8, temporal=16, quantizer="vq", codebook=1024, batch=1024)]},
)


@pytest.fixture
def checks(app: App, run_recipe: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[PeakCheck]]:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "0")
    out = []
    for params in RUNS:
        summary = run_recipe("signal:tiny", **params)
        assert summary.outcome == "ok"
        out.append(declared_peaks(app, summary))
    return out


def _table(checks: list[PeakCheck]) -> str:
    return "\n".join(f"  {c.stage:<22} declared {(c.declared_bytes or 0) / fp.MiB:7.1f} MiB  "
                     f"peak {(c.peak_bytes or 0) / fp.MiB:7.1f} MiB  ratio {c.ratio or 0:.2f}  "
                     f"{dict(c.drivers)}" for c in checks)


def test_every_peak_is_within_its_declaration_and_not_far_below_it(checks: list[list[PeakCheck]]) -> None:
    every = [c for run in checks for c in run]
    if any(c.peak_bytes is None for c in every):
        pytest.skip("the containment in use reports no peak")
    print("\n" + _table(every))
    assert len(every) == 2 * 7
    assert all(c.peak_bytes is not None and c.declared_bytes is not None
               and c.peak_bytes <= c.declared_bytes for c in every), _table(every)
    ratios = [c.ratio for c in every if c.ratio is not None and c.stage != "report"]
    assert statistics.median(ratios) <= MAX_MEDIAN_RATIO, _table(every)


def _kind(stage: str) -> str:
    """``train-w64s8t16-vq1024`` → ``train vq``: the step, and for a codec its quantizer."""
    step, _, config = stage.partition("-")
    return f"{step} {'vq' if '-vq' in config else 'scalar'}" if config else step


def test_the_measured_peaks_follow_the_drivers(checks: list[list[PeakCheck]]) -> None:
    """Not a constant: where the declarations of two sizes differ by more than a few MiB, the
    peaks differ the same way, by at least half as much; the pool really holds its block."""
    small, big = ({_kind(c.stage): c for c in run} for run in checks)
    for name in small.keys() & big.keys():
        a, b = small[name], big[name]
        assert a.declared_bytes is not None and b.declared_bytes is not None
        assert a.peak_bytes is not None and b.peak_bytes is not None
        step = a.declared_bytes - b.declared_bytes
        if abs(step) > 8 * fp.MiB:
            assert (a.peak_bytes - b.peak_bytes) / step >= 0.5, (name, a, b)
    pool = small["features"]
    block = 600 * 256 * 16 * 24  # one worker's block: 600 windows of 256 × 16, 24 bytes a value
    assert pool.peak_bytes is not None and pool.peak_bytes > 0.9 * block


SPECS = [fp.SYNTH, fp.FEATURES, *fp.CODEC_TRAIN.values(), *fp.CODEC_EVAL.values()]


@pytest.mark.parametrize("spec", SPECS)
def test_predictions_are_monotone_in_every_driver(spec: fp.Scaling) -> None:
    names = spec.drivers_used()
    base = dict.fromkeys(names, 3)
    at_base = spec.predict(base)
    for name in names:
        assert spec.predict({**base, name: 4}) >= at_base, name
        assert spec.predict({**base, name: 300}) >= spec.predict({**base, name: 4}), name


def test_declarations_are_the_scaling_model_form() -> None:
    decl = fp.FEATURES.declaration(runtime=10)
    assert decl["base"] == fp.FEATURES.base + 10
    assert decl["terms"]["workers*prefetch*window*channels"] == 26
    assert decl["terms"]["workers*prefetch*hop*channels"] == {"per": 68, "every": 10}
    drivers = fp.features_drivers(65536, 168, FeatureParams(window=1024, workers=2, prefetch=32))
    assert drivers == {"workers": 2, "prefetch": 32, "window": 1024, "hop": 1024, "channels": 168,
                       "windows": 64}
    assert set(drivers) == set(fp.FEATURES.drivers_used())
    # prefetch beyond the windows there are holds no more
    assert fp.features_drivers(65536, 168, FeatureParams(window=1024, prefetch=500))["prefetch"] == 64
    # one declaration per quantizer; each stage passes exactly the drivers its terms name
    vq = CodecConfig(window=32, spatial=12, temporal=8, quantizer="vq", codebook=8192, batch=100)
    scalar = CodecConfig(window=64, spatial=8, temporal=16, bits=8, batch=100)
    assert fp.codec_train_spec(vq) is fp.CODEC_TRAIN["vq"]
    assert fp.codec_eval_spec(scalar) is fp.CODEC_EVAL["scalar"]
    assert set(fp.codec_train_drivers(256_000, 21, vq)) == set(fp.CODEC_TRAIN["vq"].drivers_used())
    eval_drivers = fp.codec_eval_drivers(256_000, 21, scalar, feature_window=512)
    assert eval_drivers["fwindow"] == 512 and set(eval_drivers) == set(fp.CODEC_EVAL["scalar"].drivers_used())
    assert fp.codec_train_drivers(256_000, 21, vq)["rows"] == 100 * 32
