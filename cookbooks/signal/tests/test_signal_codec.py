"""The codec: exact without loss, better with more components, bits or codewords."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from blut_cookbook_signal.codec import (
    CodecConfig,
    CodecModel,
    decode_array,
    encode_array,
    pack_codes,
    train_codec,
    train_rows,
    unpack_codes,
)
from blut_cookbook_signal.evaluate import snr_db
from blut_cookbook_signal.npyio import SignalReader
from blut_cookbook_signal.synth import SynthParams, synthesize, synthesize_array


@pytest.fixture(scope="module")
def eeg() -> np.ndarray:
    return synthesize_array(SynthParams(channels=21, duration_s=60.0, seed=11))


def _held_out_snr(x: np.ndarray, c: CodecConfig) -> float:
    model = train_codec(x, c)
    test = x[train_rows(len(x), c):]
    return snr_db(test, decode_array(model, encode_array(model, test)))


def test_all_components_and_many_bits_is_nearly_lossless(eeg: np.ndarray) -> None:
    c = CodecConfig(window=32, spatial=21, temporal=32, bits=16)
    model = train_codec(eeg, c)
    # on the training part nothing is clipped: only rounding is lost
    train = eeg[:train_rows(len(eeg), c)]
    assert snr_db(train, decode_array(model, encode_array(model, train))) > 60


@pytest.mark.parametrize(("worse", "better"), [
    (dict(spatial=4, temporal=16, bits=8), dict(spatial=8, temporal=16, bits=8)),
    (dict(spatial=8, temporal=8, bits=8), dict(spatial=8, temporal=32, bits=8)),
    (dict(spatial=12, temporal=32, bits=2), dict(spatial=12, temporal=32, bits=4)),
    (dict(spatial=12, temporal=32, bits=4), dict(spatial=12, temporal=32, bits=8)),
    (dict(spatial=8, temporal=8, quantizer="vq", codebook=16), dict(spatial=8, temporal=8, quantizer="vq",
                                                                    codebook=256)),
])
def test_more_components_bits_or_codewords_code_better(eeg: np.ndarray, worse: dict[str, object],
                                                       better: dict[str, object]) -> None:
    lo = _held_out_snr(eeg, CodecConfig(window=64, **worse))  # type: ignore[arg-type]
    hi = _held_out_snr(eeg, CodecConfig(window=64, **better))  # type: ignore[arg-type]
    assert hi > lo + 0.3


def test_training_is_deterministic_and_batch_size_does_not_matter_for_pca(eeg: np.ndarray) -> None:
    a = train_codec(eeg, CodecConfig(batch=16, quantizer="vq", codebook=32, seed=1))
    b = train_codec(eeg, CodecConfig(batch=16, quantizer="vq", codebook=32, seed=1))
    assert a.codebook is not None and b.codebook is not None
    assert np.array_equal(a.codebook, b.codebook)
    c = train_codec(eeg, CodecConfig(batch=100))
    d = train_codec(eeg, CodecConfig(batch=7))
    assert np.allclose(c.spatial_basis, d.spatial_basis, atol=1e-8)
    assert np.allclose(c.temporal_basis, d.temporal_basis, atol=1e-8)


def test_encoded_shapes_padding_and_bit_budget(eeg: np.ndarray) -> None:
    c = CodecConfig(window=64, spatial=6, temporal=10, bits=5)
    model = train_codec(eeg, c)
    x = eeg[:1000]  # not a whole number of windows
    enc = encode_array(model, x)
    assert enc.codes.shape == (16, 6, 10) and enc.codes.max() < 32 and enc.rows == 1000
    assert enc.payload_bits() == 16 * 6 * 10 * 5 == 16 * c.bits_per_window()
    assert decode_array(model, enc).shape == (1000, 21)
    vq = train_codec(eeg, CodecConfig(window=64, spatial=6, temporal=10, quantizer="vq", codebook=100))
    venc = encode_array(vq, x)
    assert venc.codes.shape == (16, 6) and venc.bits == 7 and venc.codes.max() < 100


def test_packing_round_trip() -> None:
    codes = np.random.default_rng(0).integers(0, 1 << 13, size=(7, 5, 3)).astype(np.uint32)
    data = pack_codes(codes, 13)
    assert len(data) == (codes.size * 13 + 7) // 8
    assert np.array_equal(unpack_codes(data, 13, codes.size).reshape(codes.shape), codes)
    with pytest.raises(ValueError, match="fit"):
        pack_codes(np.array([8], dtype=np.uint32), 3)


def test_model_save_load_and_training_from_a_file(tmp_path: Path) -> None:
    synthesize(tmp_path, SynthParams(channels=21, duration_s=20.0, seed=2))
    c = CodecConfig(quantizer="vq", codebook=64, spatial=5, temporal=8)
    with SignalReader(tmp_path / "signal.npy") as reader:
        from_file = train_codec(reader, c)
    in_memory = train_codec(np.load(tmp_path / "signal.npy"), c)
    assert from_file.codebook is not None and in_memory.codebook is not None
    assert np.allclose(from_file.codebook, in_memory.codebook)
    from_file.save(tmp_path / "m.npz")
    in_memory.save(tmp_path / "m2.npz")
    assert (tmp_path / "m.npz").read_bytes() == (tmp_path / "m2.npz").read_bytes()  # reproducible bytes
    loaded = CodecModel.load(tmp_path / "m.npz")
    assert loaded.config == c and loaded.parameters() == from_file.parameters()
    x = np.load(tmp_path / "signal.npy")[:640]
    assert np.array_equal(decode_array(loaded, encode_array(loaded, x)),
                          decode_array(from_file, encode_array(from_file, x)))


def test_bad_configs_are_refused(eeg: np.ndarray) -> None:
    with pytest.raises(ValueError, match="temporal"):
        CodecConfig(window=8, temporal=9)
    with pytest.raises(ValueError, match="quantizer"):
        CodecConfig(quantizer="lloyd")
    with pytest.raises(ValueError, match="channels"):
        train_codec(eeg, CodecConfig(spatial=22))
    assert CodecConfig(spatial=8, temporal=16).label == "w64s8t16-q8"
    assert CodecConfig(name="mine").label == "mine"
