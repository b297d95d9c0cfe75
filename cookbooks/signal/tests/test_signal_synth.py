"""The synthetic EEG: deterministic, chunk-size independent, and EEG-like."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from blut_cookbook_signal.npyio import NpyChunkWriter, SignalReader, npy_layout
from blut_cookbook_signal.synth import (
    TEN_TWENTY,
    SignalInfo,
    SynthParams,
    artifact_schedule,
    electrodes,
    synthesize,
    synthesize_array,
)

SHORT = SynthParams(channels=21, duration_s=30.0, seed=3)


def _band_db(x: np.ndarray, fs: float, lo: float, hi: float) -> np.ndarray:
    n = 512
    seg = x[: len(x) // n * n].reshape(-1, n, x.shape[1]).astype(np.float64)
    power = np.mean(np.abs(np.fft.rfft(seg * np.hanning(n)[None, :, None], axis=1)) ** 2, axis=0)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    result: np.ndarray = 10 * np.log10(power[(f >= lo) & (f < hi)].mean(axis=0))
    return result


def test_same_seed_same_signal_bit_for_bit() -> None:
    a, b = synthesize_array(SHORT), synthesize_array(SHORT)
    assert a.dtype == np.float32 and a.shape == (SHORT.samples, 21)
    assert np.array_equal(a, b)


def test_another_seed_another_signal() -> None:
    a = synthesize_array(SHORT)
    b = synthesize_array(SynthParams(channels=21, duration_s=30.0, seed=4))
    assert not np.allclose(a, b)
    assert abs(np.corrcoef(a[:, 0], b[:, 0])[0, 1]) < 0.3


def test_the_chunk_size_changes_memory_not_the_signal() -> None:
    a = synthesize_array(SHORT)
    b = synthesize_array(SynthParams(channels=21, duration_s=30.0, seed=3, chunk_s=1.37))
    assert np.allclose(a, b, rtol=0, atol=1e-3)


@pytest.mark.parametrize("channels", [21, 168, 5])
def test_any_channel_count(channels: int) -> None:
    x = synthesize_array(SynthParams(channels=channels, duration_s=4.0, fs=128.0))
    assert x.shape == (512, channels) and np.all(np.isfinite(x))
    names, pos = electrodes(channels)
    assert len(names) == channels == len(set(names))
    assert np.allclose(np.linalg.norm(pos, axis=1), 1.0)


def test_it_looks_like_eeg() -> None:
    x = synthesize_array(SynthParams(channels=21, duration_s=60.0, seed=1, artifact_rate=0.0))
    names = [n for n, _, _ in TEN_TWENTY]
    rms = x.std(axis=0)
    assert np.all((rms > 5) & (rms < 60))  # tens of microvolts
    # 1/f: much more power at 1-3 Hz than at 35-45 Hz
    assert np.all(_band_db(x, 256, 1, 3) > _band_db(x, 256, 35, 45) + 10)
    # an alpha peak over the back of the head, above its neighbouring bands
    o1 = names.index("O1")
    alpha = _band_db(x, 256, 9, 12)[o1]
    assert alpha > _band_db(x, 256, 5, 7)[o1] + 2 and alpha > _band_db(x, 256, 14, 17)[o1] + 2
    assert alpha > _band_db(x, 256, 9, 12)[names.index("Fp1")] + 3
    # neighbours correlate, distant electrodes much less
    c = np.asarray(np.corrcoef(x.T))
    assert c[names.index("C3"), names.index("Cz")] > 0.3
    assert c[names.index("Fp1"), names.index("Fp2")] > c[names.index("Fp1"), names.index("O2")] + 0.3


def test_artifacts_are_scheduled_and_blinks_are_frontal() -> None:
    p = SynthParams(channels=21, duration_s=120.0, seed=2, artifact_rate=3.0)
    _, pos = electrodes(21)
    events = artifact_schedule(p, pos)
    kinds = {e.kind for e in events}
    assert kinds == {"blink", "muscle", "pop"}
    assert [e.start for e in events] == sorted(e.start for e in events)
    clean = synthesize_array(SynthParams(channels=21, duration_s=120.0, seed=2, artifact_rate=0.0))
    noisy = synthesize_array(p)
    extra = np.sqrt(np.mean((noisy.astype(np.float64) - clean) ** 2, axis=0))
    names = [n for n, _, _ in TEN_TWENTY]
    assert extra[names.index("Fp1")] > 3 * extra[names.index("Pz")]


def test_synthesize_writes_a_memory_mappable_npy_and_its_description(tmp_path: Path) -> None:
    p = SynthParams(channels=21, duration_s=10.0, seed=5, chunk_s=3.0)
    seen: list[int] = []
    info = synthesize(tmp_path, p, progress=lambda done, total: seen.append(done))
    assert seen[-1] == p.samples and len(seen) == 4
    mapped = np.load(tmp_path / "signal.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and mapped.shape == (p.samples, 21)
    assert np.array_equal(np.asarray(mapped), synthesize_array(p))
    meta = json.loads((tmp_path / "signal.json").read_text())
    assert meta["fs"] == 256.0 and meta["channels"] == 21 and meta["names"][0] == "Fp1"
    assert SignalInfo.load(tmp_path) == info
    with SignalReader(tmp_path / "signal.npy") as reader:
        assert np.array_equal(reader.read(100, 50), mapped[100:150])


def test_chunk_writer_refuses_a_short_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 of 4 rows"), NpyChunkWriter(tmp_path / "x.npy", 4, 2) as w:
        w.write(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="rows written"), NpyChunkWriter(tmp_path / "y.npy", 4, 2) as w:
        w.write(np.zeros((5, 2), np.float32))
    assert not list(tmp_path.iterdir())
    with NpyChunkWriter(tmp_path / "z.npy", 4, 2) as w:
        w.write(np.arange(8, dtype=np.float64).reshape(4, 2))
    assert npy_layout(tmp_path / "z.npy") == (128, (4, 2))
    assert np.load(tmp_path / "z.npy").dtype == np.float32
