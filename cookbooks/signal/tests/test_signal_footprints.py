"""Predicted footprints against peaks measured in fresh processes.

Every memory-spending step runs in its own interpreter (``python -m
blut_cookbook_signal.peak``) at two or more values of each of its drivers; the kernel's peak
resident set of that process (and of each pool worker) is read at the end. A prediction
must never be below the measured peak, and at the median at most 1.5 times it.
Run with ``-s`` to see the table of figures.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from blut_cookbook_signal import footprints as fp
from blut_cookbook_signal.codec import CodecConfig
from blut_cookbook_signal.features import FEATURES, FeatureParams, FeatureResult
from blut_cookbook_signal.npyio import NpyChunkWriter
from blut_cookbook_signal.peak import measure
from blut_cookbook_signal.synth import SynthParams

FS = 256.0
MAX_MEDIAN_RATIO = 1.5

Point = tuple[str, str, dict[str, Any], int]  # (step, label, args, predicted bytes)


def _signal(path: Path, rows: int, channels: int) -> Path:
    """A noise signal (content does not change memory), written fast from one tiled block."""
    block = np.random.default_rng(channels).standard_normal((4096, channels), dtype=np.float32)
    with NpyChunkWriter(path, rows, channels) as writer:
        for start in range(0, rows, len(block)):
            writer.write(block[:rows - start])
    return path


def _feature_cache(directory: Path, rows: int, channels: int, window: int = 512) -> Path:
    """A feature cache of the right shape for a signal of ``rows`` samples."""
    directory.mkdir()
    result = FeatureResult(path=str(directory / "features.npy"), windows=rows // window,
                           channels=channels, window=window, hop=window, fs=FS, features=list(FEATURES))
    np.save(directory / "features.npy",
            np.ones((result.windows, channels, len(FEATURES)), dtype=np.float32))
    meta = asdict(result)
    for key in ("path", "parent_peak", "worker_peaks"):
        del meta[key]
    (directory / "features.json").write_text(json.dumps(meta), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, int, int]]]:
    """Every step's (label, predicted, measured) at its grid of drivers."""
    tmp = tmp_path_factory.mktemp("footprints")
    points: list[Point] = []

    for ch, chunk_s in ((21, 16.0), (168, 4.0), (168, 16.0)):  # 1 or 4 chunks
        sp = SynthParams(channels=ch, duration_s=16.0, chunk_s=chunk_s)
        points.append(("synth", f"channels={ch} chunk={sp.chunk}",
                       {"out_dir": str(tmp / f"synth{ch}_{sp.chunk}"), "params": asdict(sp)},
                       fp.synth_footprint(sp)))

    windows = 32
    feat_signals = {ch: _signal(tmp / f"feat{ch}.npy", windows * 1024, ch) for ch in (21, 168)}
    for ch, window, workers, prefetch in ((168, 1024, 1, 4), (168, 1024, 1, 16), (168, 1024, 2, 4),
                                          (168, 1024, 2, 16), (21, 1024, 2, 16), (168, 512, 2, 16)):
        p = FeatureParams(window=window, workers=workers, prefetch=prefetch)
        points.append(("features", f"channels={ch} window={window} workers={workers} prefetch={prefetch}",
                       {"signal": str(feat_signals[ch]), "fs": FS, "params": asdict(p),
                        "out_dir": str(tmp / f"f{ch}_{window}_{workers}_{prefetch}")},
                       fp.features_footprint(windows * 1024, ch, p)))

    rows = 40960
    codec_signals = {ch: _signal(tmp / f"codec{ch}.npy", rows, ch) for ch in (21, 168)}
    configs = [
        (168, CodecConfig(batch=64, window=64, spatial=8, temporal=16, bits=8)),
        (168, CodecConfig(batch=256, window=64, spatial=8, temporal=16, bits=8)),
        (21, CodecConfig(batch=256, window=64, spatial=8, temporal=16, bits=8)),
        (168, CodecConfig(batch=64, window=256, spatial=8, temporal=16, bits=8)),
        (168, CodecConfig(batch=128, window=64, spatial=32, temporal=32, bits=12)),
        (168, CodecConfig(batch=128, window=64, spatial=8, temporal=16, quantizer="vq", codebook=256,
                          kmeans_passes=1)),
        (168, CodecConfig(batch=128, window=64, spatial=8, temporal=16, quantizer="vq", codebook=1024,
                          kmeans_passes=1)),
    ]
    for i, (ch, c) in enumerate(configs):
        model = tmp / f"model{i}.npz"
        label = f"channels={ch} batch={c.batch} window={c.window} {c.label}"
        points.append(("codec_train", label,
                       {"signal": str(codec_signals[ch]), "model": str(model), "config": asdict(c)},
                       fp.codec_train_footprint(rows, ch, c)))
    # evaluation needs the models: measured after training, on the held-out fifth, compared
    # with a feature cache as the sweep does (its values do not change memory)
    caches = {ch: _feature_cache(tmp / f"cache{ch}", rows, ch) for ch in (21, 168)}
    eval_points = [("codec_eval", f"channels={ch} batch={c.batch} window={c.window} {c.label}",
                    {"signal": str(codec_signals[ch]), "model": str(tmp / f"model{i}.npz"),
                     "features": str(caches[ch])},
                    fp.codec_eval_footprint(rows, ch, c))
                   for i, (ch, c) in enumerate(configs) if i in (0, 1, 2, 4, 6)]

    def run(point: Point) -> tuple[str, str, int, int]:
        step, label, args, predicted = point
        return step, label, predicted, measure(step, args).peak

    out: dict[str, list[tuple[str, int, int]]] = {}
    with ThreadPoolExecutor(2) as pool:
        for batch in (points, eval_points):
            for step, label, predicted, peak in pool.map(run, batch):
                out.setdefault(step, []).append((label, predicted, peak))
    return out


def _table(rows: list[tuple[str, int, int]]) -> Iterator[str]:
    for label, predicted, peak in rows:
        yield f"  {label:<58} predicted {predicted / fp.MiB:7.1f} MiB  measured {peak / fp.MiB:7.1f} MiB  " \
              f"ratio {predicted / peak:.2f}"


@pytest.mark.parametrize("step", ["synth", "features", "codec_train", "codec_eval"])
def test_prediction_covers_the_measured_peak_and_is_not_far_above(
        step: str, measured: dict[str, list[tuple[str, int, int]]]) -> None:
    rows = measured[step]
    ratios = [predicted / peak for _, predicted, peak in rows]
    print(f"\n{step}: median ratio {statistics.median(ratios):.2f}, minimum {min(ratios):.2f}")
    print("\n".join(_table(rows)))
    assert len(rows) >= 3
    assert min(ratios) >= 1.0, "a measured peak is above its prediction:\n" + "\n".join(_table(rows))
    assert statistics.median(ratios) <= MAX_MEDIAN_RATIO, "\n".join(_table(rows))


def test_the_measured_peaks_really_scale_with_the_drivers(
        measured: dict[str, list[tuple[str, int, int]]]) -> None:
    """Not a constant: the pool's peak follows workers × prefetch; training's the batch."""
    feat = {label: peak for label, _, peak in measured["features"]}
    one_small = feat["channels=168 window=1024 workers=1 prefetch=4"]
    one_big = feat["channels=168 window=1024 workers=1 prefetch=16"]
    two_big = feat["channels=168 window=1024 workers=2 prefetch=16"]
    in_flight = 12 * 1024 * 168 * 4  # 12 more windows of 1024 x 168 float32
    assert one_big - one_small >= 0.9 * in_flight
    assert two_big - one_big >= one_big - 36 * fp.MiB  # a second worker holds as much again
    train = {label: peak for label, _, peak in measured["codec_train"]}
    small = train["channels=168 batch=64 window=64 w64s8t16-q8"]
    big = train["channels=168 batch=256 window=64 w64s8t16-q8"]
    assert big - small >= 0.9 * 192 * 64 * 168 * 12  # 192 more windows of 64 x 168, 12 bytes each


Predictor = Callable[[dict[str, int]], int]


@pytest.mark.parametrize("spec", [fp.SYNTH, fp.FEATURES, fp.CODEC_TRAIN, fp.CODEC_EVAL])
def test_predictions_are_monotone_in_every_driver(spec: fp.Scaling) -> None:
    names = spec.drivers_used()
    base = dict.fromkeys(names, 3)
    at_base = spec.predict(base)
    for name in names:
        assert spec.predict({**base, name: 4}) >= at_base, name
        assert spec.predict({**base, name: 300}) >= spec.predict({**base, name: 4}), name


def test_declaration_is_the_scaling_model_form() -> None:
    decl = fp.FEATURES.declaration(runtime=10)
    assert decl["base"] == fp.FEATURES.base + 10
    assert decl["terms"]["workers*prefetch*window*channels"] == {"per": 9, "every": 2}
    assert decl["terms"]["workers"] == 36 * fp.MiB
    drivers = fp.features_drivers(65536, 168, FeatureParams(window=1024, workers=2, prefetch=32))
    assert drivers == {"workers": 2, "prefetch": 32, "window": 1024, "channels": 168, "windows": 64}
    assert set(drivers) == set(fp.FEATURES.drivers_used())
