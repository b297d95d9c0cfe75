"""Predicted peak memory of each memory-spending step, from the values that drive it.

Every prediction is ``base + Σ ceil(Π drivers / every) × per`` — the form of blut's
``scaling`` footprint model, so :meth:`Scaling.declaration` is what a stage declares and
``drivers`` are what it passes. Every term is a product of non-negative drivers times a
positive size, so a prediction never decreases when a driver grows.

The sizes were fitted to peaks measured on Linux (Python 3.11, numpy 2) by running each step
in a fresh process (:mod:`blut_cookbook_signal.peak`) over a grid of drivers, then rounded up:
about 10 to 25 % above the fit on each term and a few MiB on the base, so that no measured peak
is above its prediction. ``base`` is a fresh interpreter with numpy and this package; a
runner that imports more (blut's stage runner) adds its own overhead, which the base
``runtime`` argument of each function takes.

Drivers (all counts):

- synth: ``channels``; ``chunk`` samples generated at once; ``taps`` of the 1/f filter.
- features: ``workers``; ``prefetch`` windows each worker holds in flight; ``window``
  samples; ``channels``; ``windows`` in the whole signal (the cache the parent writes).
- codec train / evaluate: ``rows`` read per batch (``batch × window``, or fewer when the
  part of the signal being read is shorter) and ``windows`` in them; ``channels``;
  ``spatial`` and ``temporal`` components; ``codebook`` entries (0 for scalar);
  ``window``; ``bits`` per code.
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


SYNTH = Scaling(base=40 * MiB, terms={
    "chunk*channels": Term(52), "taps*channels": Term(48), "channels*channels": Term(32)})

FEATURES = Scaling(base=36 * MiB, terms={
    "workers": Term(36 * MiB),
    "workers*window*channels": Term(32),
    "workers*prefetch*window*channels": Term(9, every=2),
    "windows*channels": Term(64)})

CODEC_TRAIN = Scaling(base=40 * MiB, terms={
    "rows*channels": Term(14), "rows*spatial": Term(10), "windows*spatial*temporal": Term(48),
    "windows*spatial*codebook": Term(9), "spatial*temporal": Term(5120),
    "channels*channels": Term(32), "window*window": Term(48), "codebook*temporal": Term(64)})

CODEC_EVAL = Scaling(base=40 * MiB, terms={
    "rows*channels": Term(16), "rows*spatial": Term(24), "windows*spatial*temporal": Term(56),
    "windows*spatial*temporal*bits": Term(1), "windows*spatial*codebook": Term(9),
    "channels*channels": Term(32), "codebook*temporal": Term(64)})


def synth_drivers(p: SynthParams) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.synth.synthesize`."""
    return {"channels": p.channels, "chunk": p.chunk, "taps": p.taps}


def features_drivers(samples: int, channels: int, p: FeatureParams) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.features.compute_features`."""
    return {"workers": p.workers, "prefetch": p.prefetch, "window": p.window, "channels": channels,
            "windows": window_count(samples, p.window, p.step)}


def _batch_rows(rows: int, c: CodecConfig, batch: int | None = None) -> int:
    return max(c.window, min((batch or c.batch) * c.window, rows))


def _codec_drivers(rows: int, channels: int, c: CodecConfig) -> dict[str, int]:
    return {"rows": rows, "windows": -(-rows // c.window), "channels": channels, "spatial": c.spatial,
            "temporal": c.temporal, "codebook": c.codebook if c.quantizer == "vq" else 0,
            "window": c.window, "bits": c.code_bits}


def codec_train_drivers(samples: int, channels: int, c: CodecConfig) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.codec.train_codec` on a signal of that shape."""
    return _codec_drivers(_batch_rows(train_rows(samples, c), c), channels, c)


def codec_eval_drivers(samples: int, channels: int, c: CodecConfig,
                       batch: int | None = None) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_signal.evaluate.evaluate_codec` (held-out rows)."""
    held = samples - train_rows(samples, c)
    return _codec_drivers(_batch_rows(held if held > 0 else samples, c, batch), channels, c)


def synth_footprint(p: SynthParams, *, runtime: int = 0) -> int:
    """Predicted peak bytes of synthesizing ``p``."""
    return SYNTH.predict(synth_drivers(p), runtime=runtime)


def features_footprint(samples: int, channels: int, p: FeatureParams, *, runtime: int = 0) -> int:
    """Predicted peak bytes of the feature pool (the parent and all its workers)."""
    return FEATURES.predict(features_drivers(samples, channels, p), runtime=runtime)


def codec_train_footprint(samples: int, channels: int, c: CodecConfig, *, runtime: int = 0) -> int:
    """Predicted peak bytes of training ``c`` on a ``(samples, channels)`` signal."""
    return CODEC_TRAIN.predict(codec_train_drivers(samples, channels, c), runtime=runtime)


def codec_eval_footprint(samples: int, channels: int, c: CodecConfig, batch: int | None = None, *,
                         runtime: int = 0) -> int:
    """Predicted peak bytes of evaluating ``c`` on the held-out part of such a signal."""
    return CODEC_EVAL.predict(codec_eval_drivers(samples, channels, c, batch), runtime=runtime)
