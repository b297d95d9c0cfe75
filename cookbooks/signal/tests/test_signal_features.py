"""The feature cache: the pool computes what a serial pass computes, and knows its peaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from blut_cookbook_signal.features import (
    FEATURES,
    FeatureParams,
    FeatureResult,
    blocks_per_worker,
    compute_features,
    features_of,
    load_features,
    window_count,
    window_features,
)
from blut_cookbook_signal.synth import SynthParams, synthesize


@pytest.fixture(scope="module")
def signal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signal")
    synthesize(out, SynthParams(channels=21, duration_s=40.0, seed=9))
    return out / "signal.npy"


def test_window_count() -> None:
    assert window_count(1000, 100, 100) == 10
    assert window_count(1000, 100, 50) == 19
    assert window_count(99, 100, 100) == 0
    assert blocks_per_worker(10, 3, 2) == [2, 2]
    assert blocks_per_worker(10, 3, 8) == [1, 1, 1, 1]


def test_known_features_of_a_sine() -> None:
    fs, n = 256.0, 512
    t = np.arange(n) / fs
    win = np.stack([10 * np.sin(2 * np.pi * 10 * t), 10 * np.sin(2 * np.pi * 20 * t)], axis=1)
    f = window_features(win.astype(np.float32), fs)
    assert f.shape == (2, len(FEATURES))
    alpha, beta = FEATURES.index("alpha_db"), FEATURES.index("beta_db")
    assert f[0, alpha] > f[0, beta] + 20 and f[1, beta] > f[1, alpha] + 20
    assert f[0, FEATURES.index("rms")] == pytest.approx(10 / np.sqrt(2), rel=1e-3)
    # Hjorth mobility of a sine is its angular frequency per sample
    assert f[0, FEATURES.index("mobility")] == pytest.approx(2 * np.pi * 10 / fs, rel=0.02)
    assert f[1, FEATURES.index("mobility")] == pytest.approx(2 * np.pi * 20 / fs, rel=0.02)
    assert f[0, FEATURES.index("complexity")] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(("workers", "prefetch", "hop"), [(2, 3, None), (1, 7, 256)])
def test_the_pool_matches_a_serial_pass(signal: Path, tmp_path: Path, workers: int, prefetch: int,
                                        hop: int | None) -> None:
    p = FeatureParams(window=512, hop=hop, workers=workers, prefetch=prefetch)
    seen: list[int] = []
    result = compute_features(signal, tmp_path, 256.0, p, progress=lambda d, t: seen.append(d))
    data = np.load(signal)
    expected = features_of(data, 256.0, 512, p.step)
    info, cache = load_features(tmp_path)
    assert info == FeatureResult.load(tmp_path) and info.windows == len(expected) == result.windows
    assert info.worker_peaks == [] and info.parent_peak == 0  # not part of the cache's content
    assert np.allclose(cache, expected, rtol=1e-5, atol=1e-4)
    assert seen[-1] == result.windows
    assert len(result.worker_peaks) == workers and all(peak > 10 << 20 for peak in result.worker_peaks)
    assert result.tree_peak == result.parent_peak + sum(result.worker_peaks)
    assert not (tmp_path / "features.npy.partial").exists()


def test_a_signal_that_is_not_float32_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4096, 3), dtype=np.float64))
    with pytest.raises(ValueError, match="float32"):
        compute_features(bad, tmp_path / "out", 256.0, FeatureParams(window=256, workers=1))


def test_a_worker_that_fails_fails_the_pass(tmp_path: Path) -> None:
    cut = tmp_path / "cut.npy"
    np.save(cut, np.zeros((4096, 3), dtype=np.float32))
    with open(cut, "r+b") as fh:  # the header promises 4096 rows; half of them are gone
        fh.truncate(128 + 2048 * 3 * 4)
    with pytest.raises(RuntimeError, match=r"feature worker .* failed"):
        compute_features(cut, tmp_path / "out", 256.0, FeatureParams(window=256, workers=2, prefetch=2))
    assert not list((tmp_path / "out").iterdir())  # neither the cache nor a partial file


def test_bad_params_are_refused() -> None:
    with pytest.raises(ValueError, match="hop"):
        FeatureParams(window=64, hop=65)
    with pytest.raises(ValueError, match="workers"):
        FeatureParams(workers=0)
