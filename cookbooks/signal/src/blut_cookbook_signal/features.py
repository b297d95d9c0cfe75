"""A feature cache: per-window, per-channel features computed by a pool of worker processes.

The signal is cut into windows of ``window`` samples every ``hop`` samples. Runs of
``prefetch`` consecutive windows form a block; the blocks are dealt to ``workers`` processes
round-robin (a fixed assignment, so which worker does what, and how much memory each holds,
does not depend on timing). A worker reads a whole block into one buffer it allocated once —
``prefetch`` windows in flight — then computes the features of each window of it and sends
them back. Memory is therefore

    parent + workers × (interpreter + per-window scratch) + workers × prefetch × window bytes

which :func:`blut_cookbook_signal.footprints.features_footprint` declares. Each worker
reports its own peak resident set when it finishes, so a run knows what it really used.

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
        self.taper = np.hanning(window).astype(np.float32)
        self.norm = np.float32(1.0 / float(np.sum(self.taper**2)))
        freqs = np.fft.rfftfreq(window, d=1.0 / fs)
        self.bins = []
        for _, lo, hi in BANDS:
            i0, i1 = int(np.searchsorted(freqs, lo)), int(np.searchsorted(freqs, hi))
            self.bins.append((i0, max(i1, i0 + 1)))


def window_features(win: F32, fs: float, spectrum: Spectrum | None = None) -> F32:
    """Features ``(channels, len(FEATURES))`` of one window ``(samples, channels)``."""
    sp = spectrum if spectrum is not None else Spectrum(win.shape[0], fs)
    x = np.ascontiguousarray(win.T)          # (channels, samples): transforms along rows
    x -= x.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(x * sp.taper, axis=1)) ** 2
    power *= sp.norm
    out = np.empty((win.shape[1], len(FEATURES)), dtype=np.float32)
    for b, (i0, i1) in enumerate(sp.bins):
        out[:, b] = 10.0 * np.log10(power[:, i0:i1].mean(axis=1) + 1e-12)
    del power
    dx = np.diff(x, axis=1)
    ddx = np.diff(dx, axis=1)
    var_x = np.einsum("ij,ij->i", x, x) / x.shape[1] + 1e-12
    var_dx = np.einsum("ij,ij->i", dx, dx) / dx.shape[1] + 1e-12
    var_ddx = np.einsum("ij,ij->i", ddx, ddx) / max(ddx.shape[1], 1)
    mobility = np.sqrt(var_dx / var_x)
    nb = len(BANDS)
    out[:, nb] = np.sqrt(var_x)
    out[:, nb + 1] = np.mean(np.abs(dx), axis=1)
    out[:, nb + 2] = mobility
    out[:, nb + 3] = np.sqrt(var_ddx / var_dx) / mobility
    return out


def features_of(data: F32, fs: float, window: int, hop: int) -> F32:
    """Features of every window of an in-memory ``(samples, channels)`` signal (serially)."""
    n = window_count(data.shape[0], window, hop)
    sp = Spectrum(window, fs)
    out = np.empty((n, data.shape[1], len(FEATURES)), dtype=np.float32)
    for i in range(n):
        out[i] = window_features(data[i * hop:i * hop + window], fs, sp)
    return out


def _blocks(windows: int, prefetch: int) -> list[tuple[int, int]]:
    return [(first, min(prefetch, windows - first)) for first in range(0, windows, prefetch)]


def _worker(path: str, fs: float, window: int, hop: int, prefetch: int,
            blocks: Sequence[tuple[int, int]], results: Any) -> None:
    """One pool worker: read each block into the in-flight buffer, send its features."""
    steady_heap()
    try:
        with SignalReader(path) as reader:
            sp = Spectrum(window, fs)
            inflight = np.empty(((prefetch - 1) * hop + window, reader.channels), dtype=np.float32)
            for first, count in blocks:
                held = reader.read(first * hop, (count - 1) * hop + window, inflight)
                feats = np.empty((count, reader.channels, len(FEATURES)), dtype=np.float32)
                for i in range(count):
                    feats[i] = window_features(held[i * hop:i * hop + window], fs, sp)
                results.put(("block", first, feats))
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
                         args=(str(signal_path), fs, params.window, hop, params.prefetch,
                               blocks[k::workers], results))
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
