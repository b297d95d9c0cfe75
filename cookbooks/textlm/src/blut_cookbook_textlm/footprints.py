"""Predicted peak memory of training and sampling, from the values that drive it.

Every prediction is ``base + Σ ceil(Π drivers / every) × per`` — the form of blut's
``scaling`` footprint model, so :meth:`Scaling.declaration` is what a stage declares and the
drivers are what it passes. Every term is a product of non-negative drivers times a positive
size, so a prediction never decreases when a driver grows.

Training holds, for backpropagation through time, every hidden state and its gradient
(``batch × context × hidden`` float32 each) and the output probabilities
(``batch × context × vocab``); the weights, their gradients, Adam's two moments and a
checkpoint's copy (and its JSON text) scale with ``hidden²`` and ``vocab × hidden``. The sizes
were fitted to the peaks blut itself measures: ``textlm:small`` run under ``blut run`` (each
stage in its own memory cgroup, forked from the local launcher's server, which has numpy
imported already) at two or more values of batch, context and hidden, the peaks read back
with :func:`blut_core.testing.declared_peaks`, then a fit that no peak is above, each term
rounded up by about 8 % and the base by a few hundred KiB. ``base`` is what a stage holds
beyond the server's modules, less ``runtime``: about 4 MiB in a fresh fork of the server (the
pages of the server's objects a stage touches are copied into it), the text and its
vocabulary for training. A stage that runs in a reused worker finds much of that resident
already and peaks lower: the declarations are for a fresh fork, the most a stage needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blut_cookbook_textlm.train import TrainParams

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


TRAIN = Scaling(base=5 * MiB + 512 * 1024, terms={
    "batch*context*hidden": Term(61, every=10), "batch*context*vocab": Term(88, every=10),
    "hidden*hidden": Term(96), "vocab*hidden": Term(115)})

SAMPLE = Scaling(base=4 * MiB, terms={"hidden*hidden": Term(40), "vocab*hidden": Term(40)})


def train_drivers(p: TrainParams, vocab: int) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_textlm.train.train` with a vocabulary of ``vocab``."""
    return {"batch": p.batch, "context": p.context, "hidden": p.hidden, "vocab": vocab}


def sample_drivers(hidden: int, vocab: int) -> dict[str, int]:
    """Drivers of :func:`blut_cookbook_textlm.sample.sample`."""
    return {"hidden": hidden, "vocab": vocab}


def train_footprint(p: TrainParams, vocab: int, *, runtime: int = 0) -> int:
    """Predicted peak bytes of training with ``p``."""
    return TRAIN.predict(train_drivers(p, vocab), runtime=runtime)


def sample_footprint(hidden: int, vocab: int, *, runtime: int = 0) -> int:
    """Predicted peak bytes of sampling from a model of that shape (the checkpoint loaded)."""
    return SAMPLE.predict(sample_drivers(hidden, vocab), runtime=runtime)
