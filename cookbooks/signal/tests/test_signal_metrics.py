"""SNR, PRD, compression ratio on inputs whose answers are known; the report table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from blut_cookbook_signal.codec import CodecConfig, train_codec
from blut_cookbook_signal.evaluate import (
    ErrorAccumulator,
    compression_ratio,
    evaluate_codec,
    prd,
    prdn,
    snr_db,
)
from blut_cookbook_signal.features import FeatureParams, compute_features, load_features
from blut_cookbook_signal.npyio import SignalReader
from blut_cookbook_signal.report import markdown_table, pareto, render_report
from blut_cookbook_signal.synth import SynthParams, synthesize


def test_snr_and_prd_of_known_signals() -> None:
    x = np.array([[1.0], [-1.0], [1.0], [-1.0]])  # zero mean, power 1
    y = x * 0.9                                     # error power 0.01
    assert snr_db(x, y) == pytest.approx(20.0)
    assert prd(x, y) == pytest.approx(10.0)
    assert prdn(x, y) == pytest.approx(10.0)
    assert snr_db(x, x) == math.inf and prd(x, x) == 0.0
    # an offset: PRD counts it as signal, PRDN and SNR do not
    z = x + 3.0
    assert prd(z, y + 3.0) == pytest.approx(100 * math.sqrt(0.01 / 10.0))
    assert prdn(z, y + 3.0) == pytest.approx(10.0)
    assert snr_db(z, y + 3.0) == pytest.approx(20.0)
    assert compression_ratio(3200, 100) == 32.0


def test_snr_is_prdn_in_decibels() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(500, 3))
    y = x + rng.normal(0, 0.3, size=x.shape)
    assert snr_db(x, y) == pytest.approx(-20 * math.log10(prdn(x, y) / 100))


def test_the_accumulator_matches_the_whole_array() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=(1000, 4))
    y = x + rng.normal(0, 0.1, size=x.shape)
    acc = ErrorAccumulator(4)
    for a in range(0, 1000, 128):
        acc.add(x[a:a + 128], y[a:a + 128])
    assert acc.snr_db() == pytest.approx(snr_db(x, y))
    assert acc.prd() == pytest.approx(prd(x, y))
    assert acc.prdn() == pytest.approx(prdn(x, y))


def test_evaluate_a_codec_on_the_held_out_part(tmp_path: Path) -> None:
    synthesize(tmp_path / "sig", SynthParams(channels=21, duration_s=40.0, seed=4))
    compute_features(tmp_path / "sig/signal.npy", tmp_path / "feat", 256.0,
                     FeatureParams(window=512, workers=1, prefetch=4))
    info, cache = load_features(tmp_path / "feat")
    with SignalReader(tmp_path / "sig/signal.npy") as reader:
        results = {}
        for bits in (3, 8):
            c = CodecConfig(spatial=10, temporal=24, bits=bits, batch=32)
            model = train_codec(reader, c)
            results[bits] = evaluate_codec(model, reader, features=cache, fs=info.fs,
                                           feature_window=info.window, feature_hop=info.hop)
    lo, hi = results[3], results[8]
    assert lo.samples == 40 * 256 - 8192 and lo.feature_windows == 4
    assert hi.snr_db > lo.snr_db and hi.prd < lo.prd and hi.band_error_db < lo.band_error_db
    # CR: 32-bit samples over 10 x 24 codes of `bits` bits per 64-sample window of 21 channels
    assert lo.compression_ratio == pytest.approx(64 * 21 * 32 / (10 * 24 * 3), rel=0.01)
    assert lo.compression_ratio_with_model < lo.compression_ratio
    assert hi.snr_db == pytest.approx(-20 * math.log10(hi.prdn / 100))
    rows = [r.as_dict() for r in results.values()]
    report = render_report(rows, signal={"channels": 21, "samples": 10240, "fs": 256.0, "seed": 4})
    assert report.startswith("# Codec sweep\n") and "w64s10t24-q3" in report and "w64s10t24-q8" in report


def test_pareto_front_and_table() -> None:
    rows = [
        {"config": "a", "compression_ratio": 10.0, "snr_db": 20.0},
        {"config": "b", "compression_ratio": 20.0, "snr_db": 10.0},
        {"config": "c", "compression_ratio": 5.0, "snr_db": 15.0},   # beaten by a on both
        {"config": "d", "compression_ratio": 10.0, "snr_db": float("nan")},
    ]
    assert pareto(rows) == [True, True, False, False]
    table = markdown_table(rows).splitlines()
    assert table[0].startswith("|  | config | quantizer |")
    body = [line.split("|")[1:3] for line in table[2:]]
    assert [(star.strip(), name.strip()) for star, name in body] == [
        ("*", "b"), ("*", "a"), ("", "d"), ("", "c")]
    assert "| n/a |" in table[4]
    assert render_report([]).endswith("No configuration was evaluated.\n")
