"""Deterministic multichannel EEG-like signals, generated and written chunk by chunk.

A signal is the sum of

- a **1/f background**: white noise, mixed across channels by a Gaussian kernel of electrode
  distance (neighbouring channels are correlated, as volume conduction makes them), then
  shaped to a ``1/f^β`` spectrum by a linear-phase FIR filter applied by overlap-save;
- **rhythms**: alpha (≈10 Hz, posterior), beta (≈20 Hz, central) and theta (≈6 Hz, frontal
  midline) with per-channel amplitude and phase (a travelling wave plus jitter), a slowly
  wandering frequency and a waxing and waning envelope;
- **artifacts** at random times: eye blinks (large, slow, frontal), muscle bursts
  (broadband, temporal, one side) and electrode pops (a step that decays, one channel);
- a little **line noise** and independent **sensor noise**.

Everything is drawn from streams seeded by ``seed``, and every stream is consumed in sample
order, so the signal does not depend on the chunk size (up to floating-point rounding in the
FFTs): a chunk is only how much is held in memory at once. Values are microvolts, float32,
written as ``(samples, channels)`` to ``signal.npy`` with its description in ``signal.json``.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blut_cookbook_signal.npyio import NpyChunkWriter
from blut_cookbook_signal.procmem import limit_blas_threads, steady_heap

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: The 21 electrodes of the 10-20 system (19 scalp sites and the two ear references), with
#: their positions projected on the plane: x from left (-1) to right, y from back (-1) to the
#: nose, radius 1 on the line through Fpz, T3, T4 and Oz.
TEN_TWENTY: tuple[tuple[str, float, float], ...] = (
    ("Fp1", -0.31, 0.95), ("Fp2", 0.31, 0.95), ("F7", -0.81, 0.59), ("F3", -0.40, 0.50),
    ("Fz", 0.0, 0.50), ("F4", 0.40, 0.50), ("F8", 0.81, 0.59), ("T3", -1.0, 0.0),
    ("C3", -0.50, 0.0), ("Cz", 0.0, 0.0), ("C4", 0.50, 0.0), ("T4", 1.0, 0.0),
    ("T5", -0.81, -0.59), ("P3", -0.40, -0.50), ("Pz", 0.0, -0.50), ("P4", 0.40, -0.50),
    ("T6", 0.81, -0.59), ("O1", -0.31, -0.95), ("O2", 0.31, -0.95), ("A1", -1.12, -0.10),
    ("A2", 1.12, -0.10),
)


@dataclass(frozen=True)
class SynthParams:
    """What to synthesize. ``chunk_s`` changes memory, not the signal."""

    channels: int = 21
    duration_s: float = 60.0
    fs: float = 256.0
    seed: int = 0
    chunk_s: float = 8.0
    background_uv: float = 12.0
    beta_exponent: float = 1.5
    alpha_uv: float = 14.0
    beta_uv: float = 4.0
    theta_uv: float = 3.0
    sensor_uv: float = 0.8
    line_hz: float = 50.0
    line_uv: float = 0.6
    artifact_rate: float = 1.0

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not self.fs > 0 or not self.duration_s > 0 or not self.chunk_s > 0:
            raise ValueError("fs, duration_s and chunk_s must be positive")
        if self.samples < 1:
            raise ValueError(f"{self.duration_s} s at {self.fs} Hz is less than one sample")

    @property
    def samples(self) -> int:
        """Number of samples (rows) of the signal."""
        return round(self.duration_s * self.fs)

    @property
    def chunk(self) -> int:
        """Samples generated (and held) at once."""
        return max(1, min(self.samples, round(self.chunk_s * self.fs)))

    @property
    def taps(self) -> int:
        """Length of the 1/f filter: the power of two covering two seconds."""
        return 1 << max(4, math.ceil(math.log2(2.0 * self.fs)))


@dataclass(frozen=True)
class Artifact:
    """One artifact event: ``kind`` is ``blink``, ``muscle`` or ``pop``."""

    kind: str
    start: int          # first sample
    length: int         # samples
    amplitude: float    # µV
    width: float = 0.0  # blink: Gaussian sigma in samples; pop: decay constant in samples
    channel: int = -1   # pop: the electrode; muscle: -1 left side, +1 right side
    index: int = 0      # position in the schedule (seeds a muscle burst's noise)


@dataclass(frozen=True)
class SignalInfo:
    """What ``signal.json`` says about ``signal.npy``."""

    path: str
    samples: int
    channels: int
    fs: float
    seed: int
    names: list[str]
    positions: list[list[float]]
    artifacts: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | Path) -> SignalInfo:
        """Read ``signal.json`` of a synthesized signal directory."""
        data = json.loads((Path(directory) / "signal.json").read_text(encoding="utf-8"))
        data["path"] = str(Path(directory) / "signal.npy")
        return cls(**data)


def electrodes(channels: int) -> tuple[list[str], F64]:
    """Names and unit-sphere positions ``(channels, 3)``; +y is the nose, +z the vertex.

    21 channels are the 10-20 system; other counts are spread evenly over the head (a
    Fibonacci spiral down to 10° below the ear line), named ``E001``…
    """
    if channels == len(TEN_TWENTY):
        names = [n for n, _, _ in TEN_TWENTY]
        flat = np.array([(x, y) for _, x, y in TEN_TWENTY], dtype=np.float64)
        radius = np.hypot(flat[:, 0], flat[:, 1])
        polar = radius * (np.pi / 2)
        azimuth = np.arctan2(flat[:, 1], flat[:, 0])
    else:
        names = [f"E{i + 1:03d}" for i in range(channels)]
        i = np.arange(channels, dtype=np.float64)
        polar = np.deg2rad(100.0) * np.sqrt((i + 0.5) / channels)
        azimuth = i * np.pi * (3.0 - math.sqrt(5.0))
    pos = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth),
                    np.cos(polar)], axis=1)
    return names, pos


def mixing_matrix(pos: F64, length: float = 0.45) -> F64:
    """Row-normalized Gaussian kernel of chord distance: unit variance, local correlation."""
    d2 = np.sum((pos[:, None, :] - pos[None, :, :]) ** 2, axis=-1)
    k = np.exp(-d2 / (2.0 * length * length))
    out: F64 = k / np.sqrt(np.sum(k * k, axis=1, keepdims=True))
    return out


def pink_filter(taps: int, fs: float, exponent: float, corner_hz: float = 0.5) -> F64:
    """A linear-phase FIR of length ``taps`` whose power response is ``1/f^exponent``.

    Flat below ``corner_hz``, tapered to zero near Nyquist, unit output variance for unit
    white input (``Σ h² = 1``).
    """
    f = np.fft.rfftfreq(taps, d=1.0 / fs)
    amp = np.maximum(f, corner_hz) ** (-exponent / 2.0)
    nyq = fs / 2.0
    taper = np.clip((nyq - f) / (0.15 * nyq), 0.0, 1.0)
    amp *= np.sin(taper * np.pi / 2.0) ** 2
    h = np.roll(np.fft.irfft(amp, n=taps), taps // 2) * np.hanning(taps)
    out: F64 = h / np.sqrt(np.sum(h * h))
    return out


def _fast_len(n: int) -> int:
    """The smallest 2^a·3^b·5^c ≥ n (sizes pocketfft is fast at)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


@dataclass(frozen=True)
class _Rhythm:
    freq: float
    wobble_hz: float
    wobble_rate: float
    wobble_phase: float
    env_rates: tuple[float, float]
    env_phases: tuple[float, float]
    amplitude: F64   # (channels,)
    phase: F64       # (channels,)


def _rhythms(p: SynthParams, pos: F64) -> list[_Rhythm]:
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 3]))
    x, y = pos[:, 0], pos[:, 1]
    specs = (  # (centre frequency, spread, amplitude, spatial profile)
        (10.0, 1.0, p.alpha_uv, np.exp(-(x**2 + (y + 0.75) ** 2) / (2 * 0.45**2))),
        (20.0, 3.0, p.beta_uv, np.exp(-(x**2 + (y - 0.05) ** 2) / (2 * 0.55**2))),
        (6.0, 0.5, p.theta_uv, np.exp(-(x**2 + (y - 0.45) ** 2) / (2 * 0.35**2))),
    )
    out = []
    for centre, spread, amp, profile in specs:
        freq = centre + spread * rng.uniform(-1.0, 1.0)
        wave = rng.normal(size=3) * 1.5
        per_channel = amp * profile * rng.uniform(0.75, 1.25, size=len(pos))
        phase = pos @ wave + 0.3 * rng.normal(size=len(pos))
        out.append(_Rhythm(
            freq=freq, wobble_hz=0.1 * centre * rng.uniform(0.5, 1.0),
            wobble_rate=rng.uniform(0.05, 0.2), wobble_phase=rng.uniform(0, 2 * np.pi),
            env_rates=(rng.uniform(0.05, 0.15), rng.uniform(0.2, 0.5)),
            env_phases=(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)),
            amplitude=per_channel, phase=phase))
    return out


def artifact_schedule(p: SynthParams, pos: F64) -> list[Artifact]:
    """The artifact events of the whole signal, sorted by start sample."""
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 4]))
    fs, n = p.fs, p.samples
    events: list[Artifact] = []
    rates = {"blink": 0.2, "muscle": 0.03, "pop": 0.01}
    for kind, rate in rates.items():
        count = int(rng.poisson(rate * p.artifact_rate * p.duration_s))
        starts = np.sort(rng.uniform(0, n, size=count)).astype(np.int64)
        for s in starts:
            if kind == "blink":
                width = rng.uniform(0.08, 0.15) * fs
                events.append(Artifact(kind, int(s), int(8 * width) + 1, rng.uniform(60, 150), width))
            elif kind == "muscle":
                length = int(rng.uniform(0.5, 2.0) * fs) + 1
                side = int(rng.choice([-1, 1]))
                events.append(Artifact(kind, int(s), length, rng.uniform(10, 30), channel=side))
            else:
                tau = rng.uniform(0.2, 0.8) * fs
                sign = float(rng.choice([-1.0, 1.0]))
                events.append(Artifact(kind, int(s), int(5 * tau) + 1, sign * rng.uniform(50, 200),
                                       tau, channel=int(rng.integers(len(pos)))))
    events.sort(key=lambda e: (e.start, e.kind))
    return [Artifact(e.kind, e.start, e.length, e.amplitude, e.width, e.channel, i)
            for i, e in enumerate(events)]


def _render(event: Artifact, lo: int, hi: int, pos: F64, seed: int) -> F64:
    """Samples ``[lo, hi)`` (absolute) of ``event`` over all channels, ``(hi - lo, channels)``."""
    k = np.arange(lo - event.start, hi - event.start, dtype=np.float64)
    x, y = pos[:, 0], pos[:, 1]
    if event.kind == "blink":
        centre = 4.0 * event.width
        shape = np.exp(-0.5 * ((k - centre) / event.width) ** 2)
        profile = np.exp(-(x**2 + (y - 1.0) ** 2) / (2 * 0.35**2))
        out: F64 = event.amplitude * shape[:, None] * profile[None, :]
        return out
    if event.kind == "muscle":
        rng = np.random.default_rng(np.random.SeedSequence([seed, 5, event.index]))
        noise = rng.standard_normal((event.length + 1, len(pos)))
        burst = np.diff(noise, axis=0)[lo - event.start:hi - event.start] / np.sqrt(2.0)
        env = np.sin(np.pi * (k + 0.5) / event.length) ** 2
        profile = np.exp(-((x - event.channel * 0.95) ** 2 + y**2) / (2 * 0.3**2))
        out = event.amplitude * burst * env[:, None] * profile[None, :]
        return out
    out = np.zeros((hi - lo, len(pos)))
    out[:, event.channel] = event.amplitude * np.exp(-k / event.width)
    return out


def generate(p: SynthParams) -> Iterator[tuple[int, F32]]:
    """The signal as ``(first sample, (rows, channels) float32 chunk)``, in order."""
    _, pos = electrodes(p.channels)
    mix = mixing_matrix(pos)
    h = pink_filter(p.taps, p.fs, p.beta_exponent)
    rhythms = _rhythms(p, pos)
    events = artifact_schedule(p, pos)
    starts = [e.start for e in events]
    longest = max((e.length for e in events), default=0)
    bg_rng = np.random.default_rng(np.random.SeedSequence([p.seed, 1]))
    sensor_rng = np.random.default_rng(np.random.SeedSequence([p.seed, 2]))
    line_rng = np.random.default_rng(np.random.SeedSequence([p.seed, 6]))
    line_amp = p.line_uv * line_rng.uniform(0.5, 1.5, size=p.channels)
    line_phase = line_rng.uniform(0, 2 * np.pi, size=p.channels)
    taps = len(h)
    tail = bg_rng.standard_normal((taps - 1, p.channels)) @ mix.T
    spectra: dict[int, npt.NDArray[np.complex128]] = {}
    for c0 in range(0, p.samples, p.chunk):
        n = min(p.chunk, p.samples - c0)
        # background: the valid part of a linear convolution of [tail, new] with h
        fresh = bg_rng.standard_normal((n, p.channels)) @ mix.T
        block = np.concatenate([tail, fresh])
        tail = block[n:]
        del fresh
        nfft = _fast_len(len(block))
        if nfft not in spectra:
            spectra[nfft] = np.fft.rfft(h, n=nfft)
        spec = np.fft.rfft(block, n=nfft, axis=0)
        spec *= spectra[nfft][:, None]
        del block
        out = np.fft.irfft(spec, n=nfft, axis=0)[taps - 1:taps - 1 + n]
        del spec
        out *= p.background_uv
        # rhythms and line noise, analytic in time
        t = (c0 + np.arange(n, dtype=np.float64)) / p.fs
        for r in rhythms:
            theta = 2 * np.pi * r.freq * t + (r.wobble_hz / r.wobble_rate) * (
                np.cos(r.wobble_phase) - np.cos(2 * np.pi * r.wobble_rate * t + r.wobble_phase))
            env = np.maximum(0.0, 1.0 + 0.5 * np.sin(2 * np.pi * r.env_rates[0] * t + r.env_phases[0])
                             + 0.3 * np.sin(2 * np.pi * r.env_rates[1] * t + r.env_phases[1]))
            wave = np.sin(theta[:, None] + r.phase[None, :])
            wave *= env[:, None] * r.amplitude[None, :]
            out += wave
            del wave
        wave = np.sin(2 * np.pi * p.line_hz * t[:, None] + line_phase[None, :])
        wave *= line_amp[None, :]
        out += wave
        del wave
        out += p.sensor_uv * sensor_rng.standard_normal((n, p.channels))
        # artifacts overlapping [c0, c0 + n)
        first = bisect.bisect_left(starts, c0 - longest)
        last = bisect.bisect_left(starts, c0 + n)
        for e in events[first:last]:
            lo, hi = max(c0, e.start), min(c0 + n, e.start + e.length)
            if lo < hi:
                out[lo - c0:hi - c0] += _render(e, lo, hi, pos, p.seed)
        yield c0, out.astype(np.float32)


def synthesize_array(p: SynthParams) -> F32:
    """The whole signal in memory, ``(samples, channels)``: for small signals and tests."""
    return np.concatenate([chunk for _, chunk in generate(p)])


def synthesize(out_dir: str | Path, p: SynthParams,
               progress: Callable[[int, int], None] | None = None) -> SignalInfo:
    """Write ``signal.npy`` and ``signal.json`` into ``out_dir``; ``progress(done, total)``.

    Uses one BLAS thread (its matrices are channels × channels: a second thread only spins).
    """
    steady_heap()
    limit_blas_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names, pos = electrodes(p.channels)
    with NpyChunkWriter(out / "signal.npy", p.samples, p.channels) as writer:
        for c0, chunk in generate(p):
            writer.write(chunk)
            if progress is not None:
                progress(c0 + len(chunk), p.samples)
    counts: dict[str, int] = {}
    for e in artifact_schedule(p, pos):
        counts[e.kind] = counts.get(e.kind, 0) + 1
    info = SignalInfo(path=str(out / "signal.npy"), samples=p.samples, channels=p.channels, fs=p.fs,
                      seed=p.seed, names=names, positions=pos.round(6).tolist(),
                      artifacts=dict(sorted(counts.items())), params=asdict(p))
    meta = asdict(info)
    del meta["path"]
    (out / "signal.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return info
