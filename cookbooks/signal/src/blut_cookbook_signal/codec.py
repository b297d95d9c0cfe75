"""A transform codec for multichannel signals: separable PCA, then quantization.

A signal ``(samples, channels)`` is cut into windows of ``window`` samples. Each window is

1. centred (per-channel training means) and projected on the ``spatial`` leading principal
   components across channels, each scaled to unit variance;
2. each spatial component's time course over the window is projected on the ``temporal``
   leading principal components over time (one basis shared by all spatial components);
3. the ``spatial × temporal`` coefficients are quantized, either **scalar** — each
   coefficient on its own uniform ``bits``-bit grid over ``±clip``, where ``clip`` is the
   range that minimizes the training error at that bit depth (granular error inside,
   overload error outside; EEG coefficients are heavy-tailed, so the best range is not a
   fixed number of standard deviations) — or **vq** — each spatial component's
   ``temporal``-vector replaced by the index of its nearest entry in a k-means ``codebook``
   shared by all components.

Decoding inverts the steps. Training streams the training part of the signal (the first
``train_fraction`` of it) through a few passes, ``batch`` windows at a time: spatial
covariance, temporal covariance, coefficient spreads, then (vq) mini-batch k-means passes.
What a pass holds is a batch — ``batch × window × channels`` values and their projections —
and, for vq, the distance of each of its ``batch × spatial`` vectors to every codebook entry
(float64, one buffer for the whole training), so training memory grows with
``batch × window × channels`` and ``batch × spatial × codebook``
(:func:`blut_cookbook_signal.footprints.codec_train_footprint`). Codebooks of up to 1024
entries are seeded by k-means++, larger ones with distinct training vectors drawn at random.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from blut_cookbook_signal.npyio import F32, ArraySource, RowSource
from blut_cookbook_signal.procmem import limit_blas_threads, steady_heap

F64 = npt.NDArray[np.float64]
Codes = npt.NDArray[np.uint32]
QUANTIZERS = ("scalar", "vq")


@dataclass(frozen=True)
class CodecConfig:
    """One codec configuration. ``name`` labels it in reports (derived when empty)."""

    name: str = ""
    window: int = 64
    spatial: int = 8
    temporal: int = 16
    quantizer: str = "scalar"
    bits: int = 8
    codebook: int = 256
    batch: int = 128
    kmeans_passes: int = 4
    train_fraction: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be >= 2 samples, got {self.window}")
        if not 1 <= self.temporal <= self.window:
            raise ValueError(f"temporal must be in [1, window={self.window}], got {self.temporal}")
        if self.spatial < 1:
            raise ValueError(f"spatial must be >= 1, got {self.spatial}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}")
        if not 1 <= self.bits <= 24:
            raise ValueError(f"bits must be in [1, 24], got {self.bits}")
        if not 2 <= self.codebook <= 1 << 20:
            raise ValueError(f"codebook must be in [2, 2^20], got {self.codebook}")
        if self.batch < 1 or self.kmeans_passes < 1:
            raise ValueError("batch and kmeans_passes must be >= 1")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")

    @property
    def label(self) -> str:
        """``name``, or one made of the parameters: ``s8t16-q8`` or ``s8t16-vq256``."""
        if self.name:
            return self.name
        q = f"q{self.bits}" if self.quantizer == "scalar" else f"vq{self.codebook}"
        return f"w{self.window}s{self.spatial}t{self.temporal}-{q}"

    @property
    def code_bits(self) -> int:
        """Bits of one code: a scalar coefficient, or one vq index."""
        return self.bits if self.quantizer == "scalar" else max(1, math.ceil(math.log2(self.codebook)))

    def bits_per_window(self) -> int:
        """Payload bits of one encoded window."""
        per = self.temporal if self.quantizer == "scalar" else 1
        return self.spatial * per * self.code_bits


@dataclass
class CodecModel:
    """A trained codec: its bases, scales and (vq) codebook."""

    config: CodecConfig
    mean: F64                # (channels,)
    spatial_basis: F64       # (channels, spatial)
    spatial_scale: F64       # (spatial,)
    temporal_basis: F64      # (window, temporal)
    coef_clip: F64           # (spatial, temporal): range ±clip of each scalar quantizer
    codebook: F64 | None     # (codebook, temporal), vq only
    train_windows: int

    @property
    def channels(self) -> int:
        """Channels of the signals this model codes."""
        return int(self.mean.shape[0])

    def parameters(self) -> int:
        """Numbers a decoder needs besides the codes (its side information)."""
        n = (self.mean.size + self.spatial_basis.size + self.spatial_scale.size
             + self.temporal_basis.size)
        if self.codebook is not None:
            n += self.codebook.size
        else:
            n += self.coef_clip.size
        return int(n)

    def save(self, path: str | Path) -> None:
        """Write the model as one ``.npz`` (arrays, and the configuration as JSON).

        The same model gives the same bytes: members carry a fixed timestamp, so a model's
        content hash depends on the model only.
        """
        import zipfile

        arrays = {"mean": self.mean, "spatial_basis": self.spatial_basis,
                  "spatial_scale": self.spatial_scale, "temporal_basis": self.temporal_basis,
                  "coef_clip": self.coef_clip,
                  "codebook": self.codebook if self.codebook is not None else np.zeros((0, 0)),
                  "config": np.array(json.dumps(asdict(self.config), sort_keys=True)),
                  "train_windows": np.array(self.train_windows)}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w") as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: str | Path) -> CodecModel:
        """Read a model written by :meth:`save`."""
        with np.load(path) as z:
            config = CodecConfig(**json.loads(str(z["config"])))
            codebook = z["codebook"] if config.quantizer == "vq" else None
            return cls(config=config, mean=z["mean"], spatial_basis=z["spatial_basis"],
                       spatial_scale=z["spatial_scale"], temporal_basis=z["temporal_basis"],
                       coef_clip=z["coef_clip"], codebook=codebook,
                       train_windows=int(z["train_windows"]))


def train_rows(rows: int, config: CodecConfig) -> int:
    """Rows of a signal of ``rows`` samples that training uses (whole windows)."""
    windows = int(rows * config.train_fraction) // config.window
    return windows * config.window


class _Batches:
    """Whole-window batches of rows, read into one float32 buffer and widened into one float64
    buffer: each batch is a view, so a pass never holds two batches (nor one from a pass before)."""

    def __init__(self, source: RowSource, stop: int, config: CodecConfig) -> None:
        self.source, self.stop, self.step = source, stop, config.batch * config.window
        self.raw = np.empty((min(self.step, stop), source.channels), dtype=np.float32)
        self.wide = np.empty(self.raw.shape, dtype=np.float64)

    def __len__(self) -> int:
        return math.ceil(self.stop / self.step)

    def __iter__(self) -> Iterator[F64]:
        for a in range(0, self.stop, self.step):
            n = min(self.step, self.stop - a)
            out = self.wide[:n]
            out[...] = self.source.read(a, n, self.raw)
            yield out


def _leading(cov: F64, k: int) -> tuple[F64, F64]:
    """The ``k`` leading eigenvalues and unit eigenvectors of ``cov``, signs fixed."""
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:k]
    vals, vecs = np.maximum(values[order], 0.0), vectors[:, order]
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    out: F64 = vecs * signs
    return vals, out


def _spatial(model: CodecModel, x: F64) -> F64:
    """Rows ``(b·window, channels)`` → unit-variance spatial components ``(b, spatial, window)``."""
    c = model.config
    z = x @ model.spatial_basis           # (x − mean)·U without a centred copy of x
    z -= model.mean @ model.spatial_basis
    z /= model.spatial_scale
    b = x.shape[0] // c.window
    out: F64 = np.ascontiguousarray(z.reshape(b, c.window, -1).transpose(0, 2, 1))
    return out


def _project(model: CodecModel, x: F64) -> F64:
    """Rows → coefficients ``(b, spatial, temporal)``."""
    out: F64 = _spatial(model, x) @ model.temporal_basis
    return out


def _reconstruct(model: CodecModel, y: F64) -> F64:
    """Coefficients ``(b, spatial, temporal)`` → rows ``(b·window, channels)``."""
    z = (y @ model.temporal_basis.T).transpose(0, 2, 1).reshape(-1, y.shape[1])
    z *= model.spatial_scale
    out: F64 = z @ model.spatial_basis.T
    out += model.mean
    return out


#: Candidate quantizer ranges: geometric bin edges of |coefficient| (unit-variance domain).
CLIP_EDGES = np.geomspace(1e-4, 1e4, 161)


class _RangeStats:
    """Per-coefficient histograms of |y| (count, Σ|y|, Σy² per bin) to pick each range."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.bins = len(CLIP_EDGES) + 1
        size = shape[0] * shape[1] * self.bins
        self.count, self.s1, self.s2 = np.zeros(size), np.zeros(size), np.zeros(size)

    def add(self, y: F64) -> None:
        """Count the coefficients ``(b, spatial, temporal)`` of one batch."""
        a = np.abs(y).reshape(-1, self.shape[0] * self.shape[1])
        flat = np.searchsorted(CLIP_EDGES, a) + np.arange(a.shape[1]) * self.bins
        size = self.count.size
        self.count += np.bincount(flat.ravel(), minlength=size)
        self.s1 += np.bincount(flat.ravel(), weights=a.ravel(), minlength=size)
        self.s2 += np.bincount(flat.ravel(), weights=(a * a).ravel(), minlength=size)

    def best_clip(self, bits: int) -> F64:
        """For each coefficient, the edge ``c`` minimizing (2c/L)²/12·n(|y|≤c) + Σ(|y|-c)²₊."""
        k, b = self.shape[0] * self.shape[1], self.bins
        count, s1, s2 = (v.reshape(k, b) for v in (self.count, self.s1, self.s2))
        out = np.empty(k)
        c = CLIP_EDGES[None, :]
        step = 2.0 * c / (1 << bits)
        for lo in range(0, k, 256):  # a few coefficients at a time: bounded scratch
            sl = slice(lo, min(k, lo + 256))
            # values above edge e_i are in bins i+1.. (bin i+1 holds (e_i, e_i+1]): suffix sums
            n_up = np.cumsum(count[sl, ::-1], axis=1)[:, ::-1][:, 1:]
            s1_up = np.cumsum(s1[sl, ::-1], axis=1)[:, ::-1][:, 1:]
            s2_up = np.cumsum(s2[sl, ::-1], axis=1)[:, ::-1][:, 1:]
            inside = count[sl].sum(axis=1, keepdims=True) - n_up
            cost = step * step / 12.0 * inside + (s2_up - 2.0 * c * s1_up + c * c * n_up)
            out[sl] = CLIP_EDGES[np.argmin(cost, axis=1)]
        result: F64 = out.reshape(self.shape)
        return result


def _nearest(u: F64, codebook: F64, out: F64 | None = None) -> npt.NDArray[np.intp]:
    """Index of the nearest codebook row for every row of ``u``.

    One matrix product gives every distance at once (less the constant ``|u|²``):
    ``[u, 1] · [−2c, |c|²]ᵀ``, ``rows × codebook`` float64 values, written into ``out``
    (at least that many rows) when given — the largest array vector quantization holds.
    """
    n, k = u.shape[0], codebook.shape[0]
    left = np.empty((n, u.shape[1] + 1))
    left[:, :-1] = u
    left[:, -1] = 1.0
    right = np.empty((k, codebook.shape[1] + 1))
    np.multiply(codebook, -2.0, out=right[:, :-1])
    right[:, -1] = np.einsum("ij,ij->i", codebook, codebook)
    d = np.empty((n, k)) if out is None else out[:n]
    np.matmul(left, right.T, out=d)
    idx: npt.NDArray[np.intp] = np.argmin(d, axis=1)
    return idx


#: Codebooks larger than this are seeded with distinct training vectors drawn at random:
#: k-means++ makes one pass over the vectors per entry.
KMEANS_PP_MAX = 1024


def _seed(vectors: F64, k: int, rng: np.random.Generator) -> F64:
    """Initial codebook: k-means++ (up to :data:`KMEANS_PP_MAX` entries), else ``k`` distinct
    vectors at random; rows drawn with replacement, jittered, when there are fewer than k."""
    n = vectors.shape[0]
    if n <= k:
        picks = rng.integers(n, size=k)
        centres: F64 = vectors[picks] + 1e-3 * rng.standard_normal((k, vectors.shape[1]))
        return centres
    if k > KMEANS_PP_MAX:
        chosen: F64 = vectors[np.sort(rng.choice(n, size=k, replace=False))].copy()
        return chosen
    centres = np.empty((k, vectors.shape[1]))
    centres[0] = vectors[rng.integers(n)]
    best = np.sum((vectors - centres[0]) ** 2, axis=1)
    for i in range(1, k):
        total = best.sum()
        j = int(rng.choice(n, p=best / total)) if total > 0 else int(rng.integers(n))
        centres[i] = vectors[j]
        np.minimum(best, np.sum((vectors - centres[i]) ** 2, axis=1), out=best)
    return centres


def train_codec(source: RowSource | F32, config: CodecConfig,
                progress: Callable[[str, int, int], None] | None = None, *,
                blas_threads: int = 1) -> CodecModel:
    """Train ``config`` on the first ``train_fraction`` of ``source``.

    ``progress(pass name, batches done, batches)`` is called after every batch;
    ``blas_threads`` is passed to :func:`~blut_cookbook_signal.procmem.limit_blas_threads`.
    """
    steady_heap()
    limit_blas_threads(blas_threads)
    src = ArraySource(source) if isinstance(source, np.ndarray) else source
    c = config
    if c.spatial > src.channels:
        raise ValueError(f"spatial={c.spatial} is more than the signal's {src.channels} channels")
    stop = train_rows(src.rows, c)
    if stop < c.window * max(2, c.temporal):
        raise ValueError(f"{src.rows} samples leave too few training windows of {c.window}")
    batches = _Batches(src, stop, c)

    def tick(name: str, i: int) -> None:
        if progress is not None:
            progress(name, i + 1, len(batches))

    # pass 1: channel means and covariance
    total = np.zeros(src.channels)
    gram = np.zeros((src.channels, src.channels))
    for i, x in enumerate(batches):
        total += x.sum(axis=0)
        gram += x.T @ x
        tick("spatial", i)
    mean = total / stop
    cov = gram / stop - np.outer(mean, mean)
    lam, basis = _leading(cov, c.spatial)
    scale = np.sqrt(np.maximum(lam, 1e-12 * max(float(lam.max()), 1e-30)))
    model = CodecModel(config=c, mean=mean, spatial_basis=basis, spatial_scale=scale,
                       temporal_basis=np.eye(c.window)[:, :c.temporal],
                       coef_clip=np.ones((c.spatial, c.temporal)), codebook=None,
                       train_windows=stop // c.window)
    # pass 2: covariance over time, pooled over spatial components
    tgram = np.zeros((c.window, c.window))
    for i, x in enumerate(batches):
        z = _spatial(model, x).reshape(-1, c.window)
        tgram += z.T @ z
        tick("temporal", i)
    _, model.temporal_basis = _leading(tgram / (model.train_windows * c.spatial), c.temporal)
    if c.quantizer == "scalar":
        # pass 3: the range of every coefficient's quantizer
        stats = _RangeStats((c.spatial, c.temporal))
        for i, x in enumerate(batches):
            stats.add(_project(model, x))
            tick("ranges", i)
        model.coef_clip = stats.best_clip(c.bits)
    else:
        model.codebook = _train_codebook(model, batches, tick)
    return model


def _train_codebook(model: CodecModel, batches: _Batches, tick: Callable[[str, int], None]) -> F64:
    """Mini-batch k-means (per-centre learning rates 1/count) over ``kmeans_passes`` passes."""
    c = model.config
    rng = np.random.default_rng(np.random.SeedSequence([c.seed, 7]))
    centres = _seed(_project(model, next(iter(batches))).reshape(-1, c.temporal), c.codebook, rng)
    counts = np.zeros(c.codebook)
    distances = np.empty((batches.raw.shape[0] // c.window * c.spatial, c.codebook))
    for p in range(c.kmeans_passes):
        for i, x in enumerate(batches):
            u = _project(model, x).reshape(-1, c.temporal)
            idx = _nearest(u, centres, distances)
            n = np.bincount(idx, minlength=c.codebook).astype(np.float64)
            hit = n > 0
            counts += n
            for j in range(c.temporal):
                sums = np.bincount(idx, weights=u[:, j], minlength=c.codebook)
                centres[hit, j] += (sums[hit] - n[hit] * centres[hit, j]) / counts[hit]
            tick(f"kmeans {p + 1}", i)
    return centres


@dataclass
class Encoded:
    """Codes of ``rows`` samples: ``(windows, spatial, temporal)`` (scalar) or ``(windows, spatial)``."""

    codes: Codes
    rows: int
    bits: int

    def payload_bits(self) -> int:
        """Bits of the packed codes."""
        return int(self.codes.size) * self.bits


def _pad(x: F64, window: int) -> F64:
    """``x`` extended to whole windows by repeating its last row."""
    extra = (-x.shape[0]) % window
    if not extra:
        return x
    out: F64 = np.concatenate([x, np.repeat(x[-1:], extra, axis=0)])
    return out


def encode_array(model: CodecModel, x: npt.NDArray[np.floating]) -> Encoded:
    """Encode rows ``(n, channels)``."""
    c = model.config
    if x.ndim != 2 or x.shape[1] != model.channels:
        raise ValueError(f"expected (samples, {model.channels}) rows, got {x.shape}")
    y = _project(model, _pad(np.asarray(x, dtype=np.float64), c.window))
    if c.quantizer == "scalar":
        levels = 1 << c.bits
        step = 2.0 * model.coef_clip / levels
        q = np.floor(y / step) + levels // 2
        codes = np.clip(q, 0, levels - 1).astype(np.uint32)
    else:
        assert model.codebook is not None
        u = y.reshape(-1, c.temporal)
        idx = _nearest(u, model.codebook)
        codes = idx.astype(np.uint32).reshape(y.shape[0], c.spatial)
    return Encoded(codes=codes, rows=int(x.shape[0]), bits=c.code_bits)


def decode_array(model: CodecModel, enc: Encoded) -> F32:
    """Decode to rows ``(enc.rows, channels)``, float32."""
    c = model.config
    if c.quantizer == "scalar":
        levels = 1 << c.bits
        y = (enc.codes.astype(np.float64) - levels // 2 + 0.5) * (2.0 * model.coef_clip / levels)
    else:
        assert model.codebook is not None
        y = model.codebook[enc.codes]
    out: F32 = _reconstruct(model, y)[:enc.rows].astype(np.float32)
    return out


def pack_codes(codes: Codes, bits: int) -> bytes:
    """The codes as a big-endian bit stream of ``bits`` bits each (zero-padded to a byte)."""
    flat = codes.reshape(-1)
    if flat.size and int(flat.max()) >> bits:
        raise ValueError(f"a code does not fit in {bits} bits")
    stream = np.empty((flat.size, bits), dtype=np.uint8)
    for j in range(bits):  # one bit plane at a time: a byte per code and bit, no wider
        np.bitwise_and(flat >> np.uint32(bits - 1 - j), 1, out=stream[:, j], casting="unsafe")
    return np.packbits(stream.reshape(-1)).tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> Codes:
    """Inverse of :func:`pack_codes` for ``count`` codes."""
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:count * bits]
    weights = (np.uint32(1) << np.arange(bits - 1, -1, -1, dtype=np.uint32))
    out: Codes = (stream.reshape(count, bits).astype(np.uint32) * weights).sum(axis=1, dtype=np.uint32)
    return out
