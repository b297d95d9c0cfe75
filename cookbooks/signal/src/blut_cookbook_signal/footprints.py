"""Predicted peak memory of each memory-spending step, from the values that drive it.

Every prediction is ``base + Σ ceil(Π drivers / every) × per`` — the form of blut's
``scaling`` footprint model, so :meth:`Scaling.declaration` is what a stage declares and
``drivers`` are what it passes. Every term is a product of non-negative drivers times a
positive size, so a prediction never decreases when a driver grows.

The sizes were fitted to the peaks blut itself measures: the recipes run under ``blut run``
(each stage in its own memory cgroup, forked from the local launcher's server, which has
numpy imported already, so the kernel's peak is what the stage added) at two or more
values of every driver, the peaks read back with :func:`blut_core.testing.declared_peaks`,
then a fit that no peak is above, each term rounded up by about 6 % and half a MiB added to
the base. Codecs have one declaration per quantizer: scalar and vector quantization
hold different things. The declarations are for a stage in a fresh fork of the server, the
most a stage needs (it copies the pages of the server's objects it touches, a few MiB); one
that runs in a reused worker finds some of that resident already and peaks lower.

Drivers (all counts):

- synth: ``channels``; ``chunk`` samples generated at once; ``taps`` of the 1/f filter.
- features: ``workers``; ``prefetch`` windows each worker transforms at once (at most the
  windows there are); ``window`` and ``hop`` samples; ``channels``; ``windows`` in the
  whole signal (the cache the parent writes).
- codec train / evaluate: ``rows`` read per batch (``batch × window``, or fewer when the
  part of the signal being read is shorter) and ``windows`` in them; ``channels``;
  ``spatial`` and ``temporal`` components; ``window``; for vq the ``codebook`` entries, for
  scalar the ``bits`` per code; evaluation also ``fwindow``, the feature cache's window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blut_cookbook_signal.codec import CodecConfig, train_rows
from blut_cookbook_signal.features import FeatureParams, window_count
from blut_cookbook_signal.synth import SynthParams

MiB = 1 << 20


@dataclass(frozen=True)
class Term:
    """``ceil(Π drivers / every) × per`` bytes."""

    per: int
    every: int = 1


@dataclass(frozen=True)
class Scaling:
    """``base + Σ`` terms keyed by ``"driver*driver…"``, as blut's ``scaling`` model reads it."""

    base: int
    terms: Mapping[str, Term] = field(default_factory=dict)

    def predict(self, drivers: Mapping[str, int], *, runtime: int = 0) -> int:
        """Predicted peak bytes for ``drivers`` (``runtime`` is added to the base)."""
        total = self.base + runtime
        for key, term in self.terms.items():
            units = math.prod(int(drivers[name]) for name in key.split("*"))
            total += -(-units // term.every) * term.per
        return total

    def declaration(self, *, runtime: int = 0) -> dict[str, Any]:
        """The ``scaling`` model's spec: ``{"base": …, "terms": {…}}`` (sizes in bytes)."""
        terms: dict[str, Any] = {}
        for key, term in self.terms.items():
            terms[key] = term.per if term.every == 1 else {"per": term.per, "every": term.every}
        return {"base": self.base + runtime, "terms": terms}

    def drivers_used(self) -> list[str]:
        """Every driver some term names, sorted."""
        return sorted({name for key in self.terms for name in key.split("*")})


SYNTH = Scaling(base=6 * MiB, terms={"chunk*channels": Term(36), "taps*channels": Term(76)})

#: The pool: each worker's interpreter, the block it transforms (the windows in float64,
#: their spectra and a work array: about 24 bytes a value) and the samples it reads them
#: from; the parent, the cache it writes.
FEATURES = Scaling(base=13 * MiB + 768 * 1024, terms={
    "workers": Term(19_000_000),
    "workers*prefetch*window*channels": Term(26),
    "workers*prefetch*hop*channels": Term(68, every=10),
    "windows*channels": Term(22, every=10)})

CODEC_TRAIN = {
    #: A batch read (float32) and widened (float64), its projections, the coefficients'
    #: range statistics.
    "scalar": Scaling(base=3 * MiB + 512 * 1024, terms={
        "rows*channels": Term(17), "rows*spatial": Term(21), "windows*spatial*temporal": Term(18),
        "spatial*temporal": Term(3800)}),
    #: ... and the distances of a batch's vectors to every codebook entry, 8 bytes each.
    "vq": Scaling(base=5 * MiB, terms={
        "rows*channels": Term(17), "rows*spatial": Term(19), "windows*spatial*temporal": Term(17, every=10),
        "windows*spatial*codebook": Term(89, every=10), "codebook*temporal": Term(53, every=10)}),
}

CODEC_EVAL = {
    #: A batch and its reconstruction, their projections and codes, the feature windows
    #: compared with the cache.
    "scalar": Scaling(base=3 * MiB + 512 * 1024, terms={
        "rows*channels": Term(16), "rows*spatial": Term(17), "windows*spatial*temporal": Term(20),
        "fwindow*channels": Term(59), "window*window": Term(31)}),
    "vq": Scaling(base=2 * MiB, terms={
        "rows*channels": Term(17), "rows*spatial": Term(59, every=10), "windows*spatial*temporal": Term(22),
        "windows*spatial*codebook": Term(42, every=5), "codebook*temporal": Term(21),
        "window*window": Term(89)}),
}


def synth_drivers(p: SynthParams) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.synth.synthesize`."""
    return {"channels": p.channels, "chunk": p.chunk, "taps": p.taps}


def features_drivers(samples: int, channels: int, p: FeatureParams) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.features.compute_features`."""
    windows = window_count(samples, p.window, p.step)
    return {"workers": p.workers, "prefetch": min(p.prefetch, windows), "window": p.window,
            "hop": p.step, "channels": channels, "windows": windows}


def _batch_rows(rows: int, c: CodecConfig, batch: int | None = None) -> int:
    return max(c.window, min((batch or c.batch) * c.window, rows))


def _codec_drivers(rows: int, channels: int, c: CodecConfig, spec: Scaling,
                   **extra: int) -> dict[str, int]:
    every = {"rows": rows, "windows": -(-rows // c.window), "channels": channels,
             "spatial": c.spatial, "temporal": c.temporal, "codebook": c.codebook,
             "window": c.window, "bits": c.code_bits, **extra}
    return {name: every[name] for name in spec.drivers_used()}


def codec_train_spec(c: CodecConfig) -> Scaling:
    """The declaration of training ``c`` (one per quantizer)."""
    return CODEC_TRAIN[c.quantizer]


def codec_eval_spec(c: CodecConfig) -> Scaling:
    """The declaration of evaluating ``c`` (one per quantizer)."""
    return CODEC_EVAL[c.quantizer]


def codec_train_drivers(samples: int, channels: int, c: CodecConfig) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.codec.train_codec` on a signal of that shape."""
    return _codec_drivers(_batch_rows(train_rows(samples, c), c), channels, c, codec_train_spec(c))


def codec_eval_drivers(samples: int, channels: int, c: CodecConfig, batch: int | None = None,
                       feature_window: int = 0) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.evaluate.evaluate_codec` (held-out rows), which
    compares the reconstruction's features, windows of ``feature_window``, with the cache."""
    held = samples - train_rows(samples, c)
    return _codec_drivers(_batch_rows(held if held > 0 else samples, c, batch), channels, c,
                          codec_eval_spec(c), fwindow=feature_window)


def synth_footprint(p: SynthParams, *, runtime: int = 0) -> int:
    """Predicted peak bytes of synthesizing ``p``."""
    return SYNTH.predict(synth_drivers(p), runtime=runtime)


def features_footprint(samples: int, channels: int, p: FeatureParams, *, runtime: int = 0) -> int:
    """Predicted peak bytes of the feature pool (the parent and all its workers)."""
    return FEATURES.predict(features_drivers(samples, channels, p), runtime=runtime)


def codec_train_footprint(samples: int, channels: int, c: CodecConfig, *, runtime: int = 0) -> int:
    """Predicted peak bytes of training ``c`` on a ``(samples, channels)`` signal."""
    return codec_train_spec(c).predict(codec_train_drivers(samples, channels, c), runtime=runtime)


def codec_eval_footprint(samples: int, channels: int, c: CodecConfig, batch: int | None = None, *,
                         feature_window: int = 0, runtime: int = 0) -> int:
    """Predicted peak bytes of evaluating ``c`` on the held-out part of such a signal."""
    return codec_eval_spec(c).predict(codec_eval_drivers(samples, channels, c, batch, feature_window),
                                      runtime=runtime)
