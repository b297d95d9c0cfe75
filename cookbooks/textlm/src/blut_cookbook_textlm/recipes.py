"""The recipes' params and their entry point: what blut imports to register and check them.

``textlm:train`` and ``textlm:small`` are described in :mod:`blut_cookbook_textlm.lrsweep`,
which holds the stages and builds the plan. This module holds only the params classes
(attrs, no numpy) and :func:`build`, which imports the sweep when a plan is built: so
``blut recipes show``, param validation and every other command that lists recipes never
import numpy, and a stage process still gets numpy from the sweep's module, once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from blut_core import Plan

_ge1 = attrs.validators.ge(1)


def _lrs_valid(_: Any, attribute: attrs.Attribute[list[float]], value: list[float]) -> None:
    name = attribute.name
    if not value:
        raise ValueError(f"{name}: give at least one learning rate")
    if any(not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0) for lr in value):
        raise ValueError(f"{name}: learning rates must be positive numbers, got {value}")
    labels = [lr_label(lr) for lr in value]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name}: a learning rate is given twice: {value}")


@attrs.frozen(kw_only=True)
class SampleParams:
    length: int = attrs.field(default=400, validator=_ge1, metadata={"help": "Characters per sample."})
    temperature: float = attrs.field(default=0.8, validator=attrs.validators.ge(0.0),
                                     metadata={"help": "Softmax temperature (0: always the likeliest)."})
    prompt: str = attrs.field(default="The ", metadata={"help": "Text the samples continue."})
    count: int = attrs.field(default=3, validator=_ge1, metadata={"help": "Samples per model."})


@attrs.frozen(kw_only=True)
class LrSweepParams:
    lrs: list[float] = attrs.field(factory=lambda: [0.003, 0.01, 0.02, 3.0], validator=_lrs_valid,
                                   metadata={"help": "Learning rates, one branch each (3.0 diverges)."})
    steps: int = attrs.field(default=300, validator=_ge1, metadata={"help": "Training steps."})
    batch: int = attrs.field(default=32, validator=_ge1, metadata={"help": "Sequences per step."})
    context: int = attrs.field(default=64, validator=attrs.validators.ge(2),
                               metadata={"help": "Characters per sequence (backprop through time)."})
    hidden: int = attrs.field(default=128, validator=_ge1, metadata={"help": "Recurrent units."})
    seed: int = attrs.field(default=0, metadata={"help": "Seed of the weights and of the batches."})
    checkpoint_every: int = attrs.field(default=50, validator=attrs.validators.ge(0),
                                        metadata={"help": "Steps between checkpoints (0: none)."})
    eval_every: int = attrs.field(default=50, validator=attrs.validators.ge(0),
                                  metadata={"help": "Steps between validation losses (0: at the end)."})
    clip: float | None = attrs.field(default=1.0, metadata={"help": "Gradient-norm clip (null: none)."})
    warmup: int = attrs.field(default=20, validator=attrs.validators.ge(0),
                              metadata={"help": "Steps over which the learning rate ramps up."})
    sample: SampleParams = attrs.field(factory=SampleParams)


@attrs.frozen(kw_only=True)
class SmallParams:
    """``textlm:small``: a smaller model, fewer steps (for tests)."""

    lrs: list[float] = attrs.field(factory=lambda: [0.003, 0.01, 10.0], validator=_lrs_valid,
                                   metadata={"help": "Learning rates, one branch each (10.0 diverges)."})
    steps: int = attrs.field(default=40, validator=_ge1, metadata={"help": "Training steps."})
    batch: int = attrs.field(default=16, validator=_ge1, metadata={"help": "Sequences per step."})
    context: int = attrs.field(default=32, validator=attrs.validators.ge(2),
                               metadata={"help": "Characters per sequence (backprop through time)."})
    hidden: int = attrs.field(default=64, validator=_ge1, metadata={"help": "Recurrent units."})
    seed: int = attrs.field(default=0, metadata={"help": "Seed of the weights and of the batches."})
    checkpoint_every: int = attrs.field(default=10, validator=attrs.validators.ge(0),
                                        metadata={"help": "Steps between checkpoints (0: none)."})
    eval_every: int = attrs.field(default=10, validator=attrs.validators.ge(0),
                                  metadata={"help": "Steps between validation losses (0: at the end)."})
    clip: float | None = attrs.field(default=1.0, metadata={"help": "Gradient-norm clip (null: none)."})
    warmup: int = attrs.field(default=10, validator=attrs.validators.ge(0),
                              metadata={"help": "Steps over which the learning rate ramps up."})
    sample: SampleParams = attrs.field(factory=lambda: SampleParams(length=120, count=2))


def lr_label(lr: float) -> str:
    """``3e-05`` → ``lr3e-05``, ``0.01`` → ``lr0.01``: a stage-name-safe label."""
    return "lr" + f"{lr:g}".replace("+", "")


def build(params: LrSweepParams | SmallParams) -> Plan:
    """One train and one sample stage per learning rate (:func:`blut_cookbook_textlm.lrsweep.plan`)."""
    from blut_cookbook_textlm.lrsweep import plan

    return plan(params)
