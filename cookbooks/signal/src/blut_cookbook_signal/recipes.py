"""The recipes' params and their entry point: what blut imports to register and check them.

``signal:sweep`` and ``signal:tiny`` are described in :mod:`blut_cookbook_signal.sweep`,
which holds the stages and builds the plan. This module holds only the params classes
(attrs, no numpy) and :func:`build`, which imports the sweep when a plan is built: so
``blut recipes show``, param validation and every other command that lists recipes never
import numpy, and a stage process still gets numpy from the sweep's module, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from blut_core import Plan

_ge1 = attrs.validators.ge(1)


@attrs.frozen(kw_only=True)
class SignalParams:
    channels: int = attrs.field(default=21, validator=_ge1,
                                metadata={"help": "Channels (21: the 10-20 system; 168: high density)."})
    duration_s: float = attrs.field(default=1500.0, validator=attrs.validators.gt(0.0),
                                    metadata={"help": "Length of the signal in seconds."})
    fs: float = attrs.field(default=256.0, validator=attrs.validators.gt(0.0),
                            metadata={"help": "Sample rate in Hz."})
    seed: int = attrs.field(default=0, metadata={"help": "Random seed of the signal."})
    chunk_s: float = attrs.field(default=8.0, validator=attrs.validators.gt(0.0),
                                 metadata={"help": "Seconds generated at once (memory, not content)."})
    artifact_rate: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0),
                                       metadata={"help": "Multiplier of blink, muscle and pop rates."})


@attrs.frozen(kw_only=True)
class FeatureCacheParams:
    window: int = attrs.field(default=1024, validator=attrs.validators.ge(8),
                              metadata={"help": "Samples per feature window."})
    hop: int = attrs.field(default=8, validator=attrs.validators.ge(0),
                           metadata={"help": "Samples between windows (0: the window, no overlap)."})
    workers: int = attrs.field(default=3, validator=_ge1,
                               metadata={"help": "Worker processes (admission may lower it)."})
    prefetch: int = attrs.field(default=0, validator=attrs.validators.ge(0), metadata={"help": (
        "Windows each worker transforms at once. 0: sized from this machine, so that the "
        "whole pool asks for all the memory blut can give a stage here (box - floor; half of "
        "it for one worker) and admission lowers workers to what is free.")})


@attrs.frozen(kw_only=True)
class CodecSpec:
    name: str = attrs.field(default="", metadata={"help": "Label (empty: made of the parameters)."})
    window: int = attrs.field(default=64, validator=attrs.validators.ge(2),
                              metadata={"help": "Samples per coded window."})
    spatial: int = attrs.field(default=8, validator=_ge1,
                               metadata={"help": "Spatial principal components kept."})
    temporal: int = attrs.field(default=16, validator=_ge1,
                                metadata={"help": "Temporal principal components kept per window."})
    quantizer: str = attrs.field(default="scalar", validator=attrs.validators.in_(("scalar", "vq")),
                                 metadata={"help": "scalar (bits per coefficient) or vq (a codebook)."})
    bits: int = attrs.field(default=8, validator=[attrs.validators.ge(1), attrs.validators.le(24)],
                            metadata={"help": "Bits per coefficient (scalar)."})
    codebook: int = attrs.field(default=256, validator=attrs.validators.ge(2),
                                metadata={"help": "Codebook entries (vq)."})
    batch: int = attrs.field(default=1024, validator=attrs.validators.ge(0), metadata={"help": (
        "Windows per training batch. 0: sized from this machine, as many as make training "
        "need 40% of the memory blut can give a stage here, at most the whole training part.")})
    kmeans_passes: int = attrs.field(default=4, validator=_ge1,
                                     metadata={"help": "Passes of mini-batch k-means (vq)."})


SWEEP_CODECS: tuple[CodecSpec, ...] = (
    CodecSpec(spatial=4, temporal=8, bits=6),
    CodecSpec(spatial=8, temporal=16, bits=4),
    CodecSpec(spatial=8, temporal=16, bits=8),
    CodecSpec(spatial=12, temporal=32, bits=8),
    CodecSpec(spatial=18, temporal=48, bits=10),
    CodecSpec(spatial=8, temporal=8, quantizer="vq", codebook=256),
    CodecSpec(spatial=12, temporal=8, quantizer="vq", codebook=1024, batch=512),
    CodecSpec(window=32, spatial=12, temporal=8, quantizer="vq", codebook=8192, batch=0,
              kmeans_passes=2),
)
#: The share of what blut can give a stage (box - floor) that a ``batch=0`` codec trains in.
TINY_CODECS: tuple[CodecSpec, ...] = (
    CodecSpec(window=32, spatial=4, temporal=8, bits=4, batch=32),
    CodecSpec(window=32, spatial=6, temporal=16, bits=8, batch=32),
    CodecSpec(window=32, spatial=4, temporal=8, quantizer="vq", codebook=64, batch=32, kmeans_passes=2),
)


@attrs.frozen(kw_only=True)
class SweepParams:
    signal: SignalParams = attrs.field(factory=SignalParams)
    features: FeatureCacheParams = attrs.field(factory=FeatureCacheParams)
    codecs: list[CodecSpec] = attrs.field(factory=lambda: list(SWEEP_CODECS), metadata={"help": (
        "The codec configurations to train. batch=0: sized from this machine, as many windows "
        "as make training need 40% of what blut can give a stage here (box - floor), at most "
        "the whole training part (the 8192-entry codebook's, so that it waits for memory "
        "while the feature pool runs).")})
    train_fraction: float = attrs.field(default=0.8, validator=attrs.validators.and_(
        attrs.validators.gt(0.0), attrs.validators.lt(1.0)),
        metadata={"help": "Share of the signal the codecs train on (the rest is for evaluation)."})
    title: str = attrs.field(default="Codec sweep", metadata={"help": "Heading of the report."})


@attrs.frozen(kw_only=True)
class TinyParams:
    """``signal:tiny``: the same pipeline on a signal of a few seconds (for tests)."""

    signal: SignalParams = attrs.field(factory=lambda: SignalParams(channels=8, duration_s=24.0,
                                                                    chunk_s=4.0))
    features: FeatureCacheParams = attrs.field(
        factory=lambda: FeatureCacheParams(window=256, hop=0, workers=2, prefetch=4))
    codecs: list[CodecSpec] = attrs.field(factory=lambda: list(TINY_CODECS),
                                          metadata={"help": "The codec configurations to train."})
    train_fraction: float = attrs.field(default=0.75, validator=attrs.validators.and_(
        attrs.validators.gt(0.0), attrs.validators.lt(1.0)),
        metadata={"help": "Share of the signal the codecs train on (the rest is for evaluation)."})
    title: str = attrs.field(default="Codec sweep (tiny)", metadata={"help": "Heading of the report."})


def build(params: SweepParams | TinyParams) -> Plan:
    """The sweep's DAG for ``params`` (:func:`blut_cookbook_signal.sweep.plan`)."""
    from blut_cookbook_signal.sweep import plan

    return plan(params)
