"""How good a codec is: SNR, PRD, compression ratio, and how well it keeps the features.

Definitions (``x`` the original, ``y`` the reconstruction, sums over every sample and
channel, ``x̄`` the per-channel mean of ``x``):

- ``snr_db = 10·log10(Σ(x − x̄)² / Σ(x − y)²)``: signal variance over error power;
- ``prd = 100·sqrt(Σ(x − y)² / Σx²)`` (percent root-mean-square difference) and
  ``prdn``, the same with ``Σ(x − x̄)²`` below, which does not depend on the DC offset;
  ``snr_db = −20·log10(prdn / 100)``;
- ``compression_ratio = original bits / coded bits``, the original being float32 samples.

:func:`evaluate_codec` streams the held-out part of a signal (after the training rows)
through encode and decode, ``batch`` windows at a time, and compares the features of the
reconstruction with the feature cache's on the windows it covers that do not overlap (mean
absolute band-power error in dB, RMS error in percent).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from blut_cookbook_signal.codec import CodecModel, decode_array, encode_array, pack_codes, train_rows
from blut_cookbook_signal.features import BANDS, FEATURES, BlockFeatures
from blut_cookbook_signal.npyio import F32, RowSource
from blut_cookbook_signal.procmem import limit_blas_threads, steady_heap

Array = npt.NDArray[np.floating]


def snr_db(x: Array, y: Array) -> float:
    """``10·log10(Σ(x − x̄)² / Σ(x − y)²)``, per-channel means over axis 0; inf if exact."""
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    signal = float(np.sum((x64 - x64.mean(axis=0)) ** 2))
    noise = float(np.sum((x64 - y64) ** 2))
    return _ratio_db(signal, noise)


def prd(x: Array, y: Array) -> float:
    """``100·sqrt(Σ(x − y)² / Σx²)``, in percent."""
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return 100.0 * math.sqrt(float(np.sum((x64 - y64) ** 2)) / float(np.sum(x64 * x64)))


def prdn(x: Array, y: Array) -> float:
    """``100·sqrt(Σ(x − y)² / Σ(x − x̄)²)``, in percent (mean-removed PRD)."""
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return 100.0 * math.sqrt(float(np.sum((x64 - y64) ** 2))
                             / float(np.sum((x64 - x64.mean(axis=0)) ** 2)))


def compression_ratio(original_bits: int, coded_bits: int) -> float:
    """``original_bits / coded_bits``."""
    if coded_bits <= 0:
        raise ValueError("coded_bits must be positive")
    return original_bits / coded_bits


def _ratio_db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


class ErrorAccumulator:
    """The sums behind SNR and PRD, over batches of ``(samples, channels)``.

    A batch is summed ``block`` rows at a time, so adding one holds a block in float64, not
    a copy of the batch.
    """

    def __init__(self, channels: int, block: int = 4096) -> None:
        self.n = 0
        self.sum_x = np.zeros(channels)
        self.sum_x2 = np.zeros(channels)
        self.sum_e2 = 0.0
        self.block = max(1, block)

    def add(self, x: Array, y: Array) -> None:
        """Add a batch of originals ``x`` and reconstructions ``y``."""
        for a in range(0, x.shape[0], self.block):
            d = np.array(x[a:a + self.block], dtype=np.float64)
            self.n += d.shape[0]
            self.sum_x += d.sum(axis=0)
            self.sum_x2 += np.einsum("ij,ij->j", d, d)
            d -= y[a:a + self.block]
            flat = d.reshape(-1)
            self.sum_e2 += float(np.dot(flat, flat))

    @property
    def signal_energy(self) -> float:
        """``Σx²``."""
        return float(self.sum_x2.sum())

    @property
    def signal_variance_sum(self) -> float:
        """``Σ(x − x̄)²`` with per-channel means."""
        if self.n == 0:
            return 0.0
        return float(np.sum(self.sum_x2 - self.sum_x**2 / self.n))

    def snr_db(self) -> float:
        """SNR in dB (see the module)."""
        return _ratio_db(self.signal_variance_sum, self.sum_e2)

    def prd(self) -> float:
        """PRD in percent."""
        return 100.0 * math.sqrt(self.sum_e2 / self.signal_energy)

    def prdn(self) -> float:
        """Mean-removed PRD in percent."""
        return 100.0 * math.sqrt(self.sum_e2 / self.signal_variance_sum)


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one codec on the held-out part of one signal."""

    config: str
    quantizer: str
    window: int
    spatial: int
    temporal: int
    bits: int
    codebook: int
    batch: int
    samples: int
    snr_db: float
    prd: float
    prdn: float
    compression_ratio: float
    compression_ratio_with_model: float
    payload_bytes: int
    model_parameters: int
    band_error_db: float
    rms_error_pct: float
    feature_windows: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (non-finite numbers as strings)."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            out[k] = str(v) if isinstance(v, float) and not math.isfinite(v) else v
        return out


class _FeatureComparer:
    """Features of the reconstruction, window by window as rows arrive, against the cache.

    Compared on every ``stride``-th window of the cache, ``stride = window // hop``, so the
    windows compared do not overlap: an overlapping cache (``hop`` below ``window``) is not
    computed again in full.
    """

    def __init__(self, cache: npt.NDArray[np.float32] | None, fs: float, window: int, hop: int,
                 start: int, channels: int) -> None:
        if cache is not None and (window < 1 or hop < 1):
            raise ValueError("comparing with a feature cache needs its window and hop")
        self.cache, self.fs, self.window, self.hop = cache, fs, max(window, 1), max(hop, 1)
        self.stride = max(1, self.window // self.hop)
        first = -(-start // self.hop)        # first window starting at or after ``start``
        self.k = -(-first // self.stride) * self.stride
        self.buf_start = start
        self.buf: F32 = np.empty((0, channels), dtype=np.float32)
        self.block = BlockFeatures(1, self.window, channels, fs) if cache is not None else None
        self.band_abs = 0.0
        self.rms_rel = 0.0
        self.count = 0

    def add(self, rows: F32) -> None:
        """The next rows of the reconstruction: compare every window they complete.

        Holds no copy of ``rows``: a window that starts in the rows kept from before is put
        together from those and the new ones; what a later window may need is kept (less
        than a window of rows).
        """
        if self.cache is None or self.block is None:
            return
        start = self.buf_start + len(self.buf)       # the first of ``rows``, absolute
        end = start + len(rows)
        nb = len(BANDS)
        rms = FEATURES.index("rms")
        while self.k < len(self.cache) and self.k * self.hop + self.window <= end:
            s = self.k * self.hop
            if s >= start:
                win = rows[s - start:s - start + self.window]
            else:
                win = np.concatenate([self.buf[s - self.buf_start:], rows[:s + self.window - start]])
            got = self.block.compute(win, 1, 1)[0]
            ref = np.asarray(self.cache[self.k])
            self.band_abs += float(np.mean(np.abs(got[:, :nb] - ref[:, :nb])))
            self.rms_rel += float(np.sqrt(np.mean(((got[:, rms] - ref[:, rms]) / ref[:, rms]) ** 2)))
            self.count += 1
            self.k += self.stride
        keep = max(self.k * self.hop, self.buf_start)  # where the next window starts, or before
        if keep >= start:
            self.buf = np.array(rows[min(keep, end) - start:])
        else:
            self.buf = np.concatenate([self.buf[keep - self.buf_start:], rows])
        self.buf_start = min(keep, end)


def evaluate_codec(model: CodecModel, source: RowSource, *, batch: int | None = None,
                   features: npt.NDArray[np.float32] | None = None, fs: float = 256.0,
                   feature_window: int = 0, feature_hop: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   blas_threads: int = 1) -> Evaluation:
    """Encode and decode the held-out rows of ``source`` and measure the result.

    ``features`` is the feature cache of the same signal (``(windows, channels, F)``, made
    with ``feature_window``/``feature_hop`` at ``fs``); without it the feature errors are NaN.
    """
    steady_heap()
    limit_blas_threads(blas_threads)
    c = model.config
    step = (batch or c.batch) * c.window
    start = train_rows(source.rows, c)
    if start >= source.rows:
        start = 0  # everything was training data: evaluate on all of it
    stop = source.rows
    acc = ErrorAccumulator(source.channels)
    comparer = _FeatureComparer(features, fs, feature_window, feature_hop, start, source.channels)
    buffer = np.empty((step, source.channels), dtype=np.float32)
    payload_bits = 0
    for a in range(start, stop, step):
        n = min(step, stop - a)
        x = source.read(a, n, buffer)
        enc = encode_array(model, x)
        payload_bits += 8 * len(pack_codes(enc.codes, enc.bits))
        y = decode_array(model, enc)
        acc.add(x, y)
        comparer.add(y)
        if progress is not None:
            progress(a + n - start, stop - start)
    samples = stop - start
    original_bits = samples * source.channels * 32
    side_bits = model.parameters() * 32
    nan = float("nan")
    return Evaluation(
        config=c.label, quantizer=c.quantizer, window=c.window, spatial=c.spatial,
        temporal=c.temporal, bits=c.code_bits, codebook=c.codebook if c.quantizer == "vq" else 0,
        batch=c.batch, samples=samples, snr_db=acc.snr_db(), prd=acc.prd(), prdn=acc.prdn(),
        compression_ratio=compression_ratio(original_bits, payload_bits),
        compression_ratio_with_model=compression_ratio(original_bits, payload_bits + side_bits),
        payload_bytes=payload_bits // 8, model_parameters=model.parameters(),
        band_error_db=comparer.band_abs / comparer.count if comparer.count else nan,
        rms_error_pct=100.0 * comparer.rms_rel / comparer.count if comparer.count else nan,
        feature_windows=comparer.count)
