"""A feature cache: per-window, per-channel features computed by a pool of worker processes.

The signal is cut into windows of ``window`` samples every ``hop`` samples. Runs of
``prefetch`` consecutive windows form a block; the blocks are dealt to ``workers`` processes
round-robin (a fixed assignment, so which worker does what, and how much memory each holds,
does not depend on timing). A worker reads a block's samples and computes the features of
all its windows at once, vectorized over windows and channels (:class:`BlockFeatures`), in
buffers it allocates once for ``prefetch`` windows: the windows in float64, their spectra,
and a work array — about 24 bytes per value of ``prefetch × window × channels``. Memory is
therefore

    parent + workers × (interpreter + prefetch × window × channels × 24 B)

which :func:`blut_cookbook_signal.footprints.features_footprint` declares. A larger
``prefetch`` means fewer, larger transforms; with overlapping windows (``hop`` below
``window``) a block holds each sample ``window / hop`` times. Each worker reports its own
peak resident set when it finishes, so a run knows what it really used.

Features of each window and channel (:data:`FEATURES`): the power in five bands in dB
(Hann-windowed periodogram), the RMS, the line length (mean absolute first difference) and
the Hjorth mobility and complexity. The cache is ``features.npy`` of shape
``(windows, channels, features)``, float32, with ``features.json`` describing it.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from blut_cookbook_signal.npyio import F32, SignalReader
from blut_cookbook_signal.procmem import peak_rss, steady_heap

BANDS: tuple[tuple[str, float, float], ...] = (
    ("delta", 1.0, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 13.0), ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
)
FEATURES: tuple[str, ...] = (*(f"{name}_db" for name, _, _ in BANDS), "rms", "line_length",
                             "mobility", "complexity")


@dataclass(frozen=True)
class FeatureParams:
    """How to cut the signal and how many workers, each holding ``prefetch`` windows."""

    window: int = 512
    hop: int | None = None
    workers: int = 2
    prefetch: int = 8
    start_method: str = "spawn"

    def __post_init__(self) -> None:
        if self.window < 8:
            raise ValueError(f"window must be >= 8 samples, got {self.window}")
        if self.hop is not None and not 1 <= self.hop <= self.window:
            raise ValueError(f"hop must be in [1, window], got {self.hop}")
        if self.workers < 1 or self.prefetch < 1:
            raise ValueError("workers and prefetch must be >= 1")

    @property
    def step(self) -> int:
        """Samples between window starts."""
        return self.window if self.hop is None else self.hop


@dataclass(frozen=True)
class FeatureResult:
    """What a feature pass produced and what its processes really held."""

    path: str
    windows: int
    channels: int
    window: int
    hop: int
    fs: float
    features: list[str]
    parent_peak: int = 0
    worker_peaks: list[int] = field(default_factory=list)

    @property
    def tree_peak(self) -> int:
        """Σ of every process's peak resident set: a bound on what the pool held at once."""
        return self.parent_peak + sum(self.worker_peaks)

    @classmethod
    def load(cls, directory: str | Path) -> FeatureResult:
        """Read ``features.json`` of a feature cache directory (without the run's peaks)."""
        data = json.loads((Path(directory) / "features.json").read_text(encoding="utf-8"))
        data["path"] = str(Path(directory) / "features.npy")
        return cls(**data)


def window_count(samples: int, window: int, hop: int) -> int:
    """How many whole windows of ``window`` samples, ``hop`` apart, fit in ``samples``."""
    return 0 if samples < window else (samples - window) // hop + 1


class Spectrum:
    """Per-window constants: the taper and the frequency bins of each band."""

    def __init__(self, window: int, fs: float) -> None:
        self.taper = np.hanning(window)
        self.norm = 1.0 / float(np.sum(self.taper**2))
        freqs = np.fft.rfftfreq(window, d=1.0 / fs)
        self.bins = []
        for _, lo, hi in BANDS:
            i0, i1 = int(np.searchsorted(freqs, lo)), int(np.searchsorted(freqs, hi))
            self.bins.append((i0, max(i1, i0 + 1)))


class BlockFeatures:
    """Features of up to ``capacity`` windows at once, in buffers allocated once.

    Three arrays of ``capacity × channels × window`` float64-sized values — the centred
    windows, their spectra (complex, half as many bins), and a work array that holds the
    tapered windows, then the power, then the differences — so one block is one transform
    per channel and window, and a worker's memory is its ``capacity``.
    """

    def __init__(self, capacity: int, window: int, channels: int, fs: float) -> None:
        if capacity < 1 or window < 8 or channels < 1:
            raise ValueError("capacity, window and channels must be positive (window >= 8)")
        self.capacity, self.window, self.channels = capacity, window, channels
        self.spectrum = Spectrum(window, fs)
        self.x = np.empty((capacity, channels, window))
        self.spec = np.empty((capacity, channels, window // 2 + 1), dtype=np.complex128)
        self.work = np.empty((capacity, channels, window))

    def compute(self, rows: F32, hop: int, count: int) -> F32:
        """Features ``(count, channels, len(FEATURES))`` of the ``count`` windows, ``hop``
        apart, starting at the first of ``rows`` (``(samples, channels)``)."""
        if not 1 <= count <= self.capacity:
            raise ValueError(f"count must be in [1, {self.capacity}], got {count}")
        w, sp = self.window, self.spectrum
        if rows.shape[0] < (count - 1) * hop + w or rows.shape[1] != self.channels:
            raise ValueError(f"rows of shape {rows.shape} hold fewer than {count} windows of "
                             f"{w} x {self.channels}")
        x, spec, work = self.x[:count], self.spec[:count], self.work[:count]
        x[...] = sliding_window_view(rows, w, axis=0)[:(count - 1) * hop + 1:hop]
        x -= x.mean(axis=2, keepdims=True)
        out = np.empty((count, self.channels, len(FEATURES)), dtype=np.float32)
        np.multiply(x, sp.taper, out=work)
        np.fft.rfft(work, axis=2, out=spec)
        power = work[:, :, :spec.shape[2]]
        np.abs(spec, out=power)
        power *= power
        for b, (i0, i1) in enumerate(sp.bins):
            out[:, :, b] = 10.0 * np.log10(power[:, :, i0:i1].mean(axis=2) * sp.norm + 1e-12)
        dx = work[:, :, :w - 1]
        np.subtract(x[:, :, 1:], x[:, :, :-1], out=dx)
        var_x = np.einsum("ijk,ijk->ij", x, x) / w + 1e-12
        var_dx = np.einsum("ijk,ijk->ij", dx, dx) / (w - 1) + 1e-12
        scratch = spec.view(np.float64)[:, :, :w - 1]  # the spectra are done with
        np.abs(dx, out=scratch)
        nb = len(BANDS)
        out[:, :, nb + 1] = scratch.mean(axis=2)
        ddx = scratch[:, :, :w - 2]
        np.subtract(dx[:, :, 1:], dx[:, :, :-1], out=ddx)
        var_ddx = np.einsum("ijk,ijk->ij", ddx, ddx) / max(w - 2, 1)
        mobility = np.sqrt(var_dx / var_x)
        out[:, :, nb] = np.sqrt(var_x)
        out[:, :, nb + 2] = mobility
        out[:, :, nb + 3] = np.sqrt(var_ddx / var_dx) / mobility
        return out


def window_features(win: F32, fs: float) -> F32:
    """Features ``(channels, len(FEATURES))`` of one window ``(samples, channels)``."""
    out: F32 = BlockFeatures(1, win.shape[0], win.shape[1], fs).compute(win, 1, 1)[0]
    return out


def features_of(data: F32, fs: float, window: int, hop: int, *, block: int = 256) -> F32:
    """Features of every window of an in-memory ``(samples, channels)`` signal (in-process)."""
    n = window_count(data.shape[0], window, hop)
    out = np.empty((n, data.shape[1], len(FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    bf = BlockFeatures(min(block, n), window, data.shape[1], fs)
    for first in range(0, n, bf.capacity):
        count = min(bf.capacity, n - first)
        out[first:first + count] = bf.compute(data[first * hop:], hop, count)
    return out


def _blocks(windows: int, prefetch: int) -> list[tuple[int, int]]:
    return [(first, min(prefetch, windows - first)) for first in range(0, windows, prefetch)]


def _worker(path: str, fs: float, window: int, hop: int, blocks: Sequence[tuple[int, int]],
            results: Any) -> None:
    """One pool worker: read each block's samples, send the features of its windows."""
    steady_heap()
    try:
        with SignalReader(path) as reader:
            most = max((count for _, count in blocks), default=1)  # prefetch, or all there are
            inflight = np.empty(((most - 1) * hop + window, reader.channels), dtype=np.float32)
            bf = BlockFeatures(most, window, reader.channels, fs)
            for first, count in blocks:
                held = reader.read(first * hop, (count - 1) * hop + window, inflight)
                results.put(("block", first, bf.compute(held, hop, count)))
        results.put(("done", os.getpid(), peak_rss()))
    except BaseException:
        results.put(("error", os.getpid(), traceback.format_exc()))
        raise


def compute_features(signal_path: str | Path, out_dir: str | Path, fs: float, params: FeatureParams,
                     progress: Callable[[int, int], None] | None = None) -> FeatureResult:
    """Compute the feature cache of ``signal_path`` into ``out_dir`` with a worker pool.

    ``progress(windows done, windows)`` is called as blocks come back (a heartbeat).
    """
    steady_heap()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with SignalReader(signal_path) as reader:
        samples, channels = reader.rows, reader.channels
    hop = params.step
    windows = window_count(samples, params.window, hop)
    if windows == 0:
        raise ValueError(f"a signal of {samples} samples has no window of {params.window}")
    blocks = _blocks(windows, params.prefetch)
    workers = min(params.workers, len(blocks))
    tmp = out / "features.npy.partial"
    cache = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                      shape=(windows, channels, len(FEATURES)))
    ctx: Any = mp.get_context(params.start_method)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, name=f"features-{k}", daemon=True,
                         args=(str(signal_path), fs, params.window, hop, blocks[k::workers], results))
             for k in range(workers)]
    for proc in procs:
        proc.start()
    peaks: dict[int, int] = {}
    done = 0
    try:
        while len(peaks) < workers:
            try:
                msg = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"feature worker {dead[0].name} died with exit code "
                                       f"{dead[0].exitcode}") from None
                continue
            if msg[0] == "block":
                _, first, feats = msg
                cache[first:first + len(feats)] = feats
                done += len(feats)
                if progress is not None:
                    progress(done, windows)
            elif msg[0] == "done":
                peaks[msg[1]] = msg[2]
            else:
                raise RuntimeError(f"feature worker {msg[1]} failed:\n{msg[2]}")
        for proc in procs:
            proc.join()
    except BaseException:
        del cache
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()
        results.close()
    cache.flush()
    del cache
    os.replace(tmp, out / "features.npy")
    result = FeatureResult(path=str(out / "features.npy"), windows=windows, channels=channels,
                           window=params.window, hop=hop, fs=fs, features=list(FEATURES),
                           parent_peak=peak_rss(), worker_peaks=[peaks[p.pid or 0] for p in procs])
    meta = asdict(result)
    for key in ("path", "parent_peak", "worker_peaks"):  # the cache is a function of its inputs:
        del meta[key]                                     # peaks vary run to run, so are not in it
    (out / "features.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return result


def load_features(directory: str | Path) -> tuple[FeatureResult, npt.NDArray[np.float32]]:
    """The cache's description and its array, memory-mapped read-only."""
    info = FeatureResult.load(directory)
    data: npt.NDArray[np.float32] = np.load(info.path, mmap_mode="r")
    return info, data


def blocks_per_worker(windows: int, prefetch: int, workers: int) -> list[int]:
    """How many blocks each worker gets (a worker with none is not started)."""
    n = math.ceil(windows / prefetch)
    return [len(range(k, n, workers)) for k in range(min(workers, n))]
