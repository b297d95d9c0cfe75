"""``signal:sweep`` and ``signal:tiny``: a codec sweep over synthetic EEG.

    synth ──> features ─────────────────────┬─> eval-<config> ──┐
      └────> train-<config> (one per config) ┘     (one each)    ├─> report
                                                                 ┘

``synth`` writes the signal; ``features`` computes the feature cache with a worker pool
while the codecs train, each configuration in a stage of its own, side by side as memory
allows; each ``eval-<config>`` codes the held-out part with its model and compares the
reconstruction's features with the cache; ``report`` tabulates every configuration.

Every stage that spends memory declares a ``scaling`` footprint from
:mod:`blut_cookbook_signal.footprints`, fed by the drivers that set its peak, with
``RUNTIME`` added for what blut's stage runner itself holds. Admission may lower the feature
pool's ``workers`` (a knob) to make it fit; the stage runs with what was admitted.

``signal:sweep`` sizes two defaults from the machine it is built on, so that it shows
admission at work on any box: ``features.prefetch=0`` makes the pool of three workers ask
for all that blut can give a stage (box − floor), so admission runs it with the workers
that fit; ``batch=0`` gives the large codebook (``w32s12t8-vq8192``) batches that make it
need 40 % of that, more than one worker's share, so it waits for memory while the pool
runs. Both hold what they declare: the pool's blocks and the codebook's distances are real
arrays. Give ``prefetch`` and ``batch`` to make a run the same on every machine.

The params classes and :func:`build`, the recipes' entry point, are in
:mod:`blut_cookbook_signal.recipes` (no numpy: what blut imports to list and check recipes);
``build`` imports this module and calls :func:`plan`. The numpy modules are imported here, at
the top: blut's fork server imports a stage's module
once, so every stage process forked from it shares numpy instead of importing it again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

import attrs

from blut_cookbook_signal import footprints as fp
from blut_cookbook_signal.codec import CodecConfig, CodecModel, train_codec, train_rows
from blut_cookbook_signal.evaluate import evaluate_codec
from blut_cookbook_signal.features import FeatureParams, compute_features, load_features, window_count
from blut_cookbook_signal.npyio import SignalReader
from blut_cookbook_signal.recipes import SWEEP_CODECS as SWEEP_CODECS
from blut_cookbook_signal.recipes import TINY_CODECS as TINY_CODECS
from blut_cookbook_signal.recipes import CodecSpec as CodecSpec
from blut_cookbook_signal.recipes import FeatureCacheParams as FeatureCacheParams
from blut_cookbook_signal.recipes import SignalParams as SignalParams
from blut_cookbook_signal.recipes import SweepParams as SweepParams
from blut_cookbook_signal.recipes import TinyParams as TinyParams
from blut_cookbook_signal.recipes import build as build
from blut_cookbook_signal.report import render_report
from blut_cookbook_signal.synth import SignalInfo, SynthParams, synthesize
from blut_core import ConfigError, Footprint, Knob, Plan, RetryOn, RetryPolicy, Stage, Timeouts

if TYPE_CHECKING:
    from blut_core import StageContext

MiB = 1 << 20
#: What a stage process holds before the step starts, beyond a bare interpreter with numpy
#: (blut's runner, the context, the event stream); added to every declared base.
RUNTIME = 1024 * 1024  # measured ~256 KiB; the rest is room for allocator variation across numpy builds
#: The share of what blut can give a stage (box - floor) that a ``batch=0`` codec trains in.
AUTO_BATCH_SHARE = 0.4


# -- stages ----------------------------------------------------------------------------------


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """The metrics worth logging: a non-finite value would prune the branch."""
    return {k: v for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def synth(ctx: StageContext) -> None:
    """Synthesize the signal into ``signal.npy`` and ``signal.json``."""

    p = SynthParams(**ctx.params["synth"])
    info = synthesize(ctx.out_dir, p, progress=lambda done, total: ctx.heartbeat(done=done, total=total))
    ctx.log(samples=info.samples, channels=info.channels,
            **{f"artifacts_{kind}": n for kind, n in info.artifacts.items()})


def features(ctx: StageContext) -> None:
    """The feature cache, with as many workers as admission allowed."""

    info = SignalInfo.load(ctx.input("synth"))
    p = ctx.params
    workers = int(ctx.knobs.get("workers", p["workers"]))
    fp = FeatureParams(window=p["window"], hop=p["hop"] or None, workers=workers, prefetch=p["prefetch"])
    result = compute_features(info.path, ctx.out_dir, info.fs, fp,
                              progress=lambda done, total: ctx.heartbeat(done=done, total=total))
    ctx.log(windows=result.windows, workers=workers,
            pool_peak_mib=round(result.tree_peak / MiB, 1),
            worker_peak_mib=round(max(result.worker_peaks, default=0) / MiB, 1))


def train(ctx: StageContext) -> None:
    """Train one codec configuration on the training part of the signal: ``model.npz``."""

    info = SignalInfo.load(ctx.input("synth"))
    config = CodecConfig(**ctx.params["codec"])
    with SignalReader(info.path) as reader:
        model = train_codec(reader, config,
                            progress=lambda name, i, n: ctx.heartbeat(phase=name, done=i, total=n))
    model.save(ctx.out_dir / "model.npz")
    ctx.log(train_windows=model.train_windows, parameters=model.parameters())


def evaluate(ctx: StageContext) -> None:
    """Code the held-out part with one model and measure it: ``metrics.json``."""

    info = SignalInfo.load(ctx.input("synth"))
    model = CodecModel.load(ctx.input(ctx.params["model_stage"]) / "model.npz")
    cache_info, cache = load_features(ctx.input("features"))
    with SignalReader(info.path) as reader:
        result = evaluate_codec(model, reader, features=cache, fs=cache_info.fs,
                                feature_window=cache_info.window, feature_hop=cache_info.hop,
                                progress=lambda done, total: ctx.heartbeat(done=done, total=total))
    metrics = result.as_dict()
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    ctx.log(**_finite({k: metrics[k] for k in ("snr_db", "prd", "prdn", "compression_ratio",
                                               "compression_ratio_with_model", "band_error_db")}))


def report(ctx: StageContext) -> None:
    """Every configuration's metrics in one table: ``report.md`` and ``results.json``."""

    rows = [json.loads((ctx.input(name) / "metrics.json").read_text(encoding="utf-8"))
            for name in ctx.params["evals"]]
    signal = json.loads((ctx.input("synth") / "signal.json").read_text(encoding="utf-8"))
    text = render_report(rows, title=ctx.params["title"], signal=signal)
    (ctx.out_dir / "report.md").write_text(text, encoding="utf-8")
    (ctx.out_dir / "results.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    snrs = [r["snr_db"] for r in rows if isinstance(r["snr_db"], float) and math.isfinite(r["snr_db"])]
    ctx.log(**_finite({"configs": len(rows), "best_snr_db": max(snrs, default=math.nan)}))


# -- the plan --------------------------------------------------------------------------------


def usable_memory() -> int:
    """What blut can ever give one stage on this machine: the box less blut's floor, as the
    broker counts them (0 when the probe cannot tell)."""
    from blut_core import BrokerConfig
    from blut_core.broker import probe

    snap = probe()
    if not snap.known:
        return 0
    return max(0, snap.box - BrokerConfig.from_environ().floor_for(snap.box))


def auto_prefetch(samples: int, channels: int, f: FeatureCacheParams, usable: int) -> int:
    """``prefetch=0``: windows per block such that the pool's blocks ask for all of
    ``usable`` (half of it for one worker), at most what spreads the signal over the workers."""
    step = f.hop or f.window
    windows = window_count(samples, f.window, step)
    spread = max(1, -(-windows // f.workers))
    if usable <= 0:
        return min(64, spread)
    target = usable if f.workers >= 2 else usable // 2
    per_window = fp.FEATURES.terms["workers*prefetch*window*channels"].per * f.window * channels
    return max(1, min(spread, -(-target // (f.workers * per_window))))


def auto_batch(samples: int, channels: int, c: CodecConfig, usable: int) -> int:
    """``batch=0``: the most windows per batch with which training needs at most
    :data:`AUTO_BATCH_SHARE` of ``usable``, at most the whole training part."""
    windows = max(1, train_rows(samples, c) // c.window)
    if usable <= 0:
        return min(128, windows)
    limit = AUTO_BATCH_SHARE * usable

    def need(batch: int) -> int:
        at = dataclasses.replace(c, batch=batch)
        return fp.codec_train_footprint(samples, channels, at, runtime=RUNTIME)

    low, high = 1, windows
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if need(mid) <= limit else (low, mid - 1)
    return low


def _scaling(spec: fp.Scaling, drivers: dict[str, int], knobs: dict[str, Knob | int] | None = None
             ) -> Footprint:
    decl = spec.declaration(runtime=RUNTIME)
    return Footprint.scaling(decl["base"], decl["terms"], drivers=drivers, knobs=knobs)


def plan(params: SweepParams | TinyParams) -> Plan:
    """The sweep's DAG for ``params``: one train and one eval stage per codec configuration."""

    s = params.signal
    synth_p = SynthParams(channels=s.channels, duration_s=s.duration_s, fs=s.fs, seed=s.seed,
                          chunk_s=s.chunk_s, artifact_rate=s.artifact_rate)
    samples, channels = synth_p.samples, s.channels
    f = params.features
    sized = f.prefetch == 0 or any(c.batch == 0 for c in params.codecs)
    usable = usable_memory() if sized else 0
    try:
        if f.prefetch == 0:
            f = attrs.evolve(f, prefetch=auto_prefetch(samples, channels, f, usable))
        feat_p = FeatureParams(window=f.window, hop=f.hop or None, workers=f.workers, prefetch=f.prefetch)
        configs = []
        for spec in params.codecs:
            config = CodecConfig(name=spec.name, window=spec.window, spatial=spec.spatial,
                                 temporal=spec.temporal, quantizer=spec.quantizer, bits=spec.bits,
                                 codebook=spec.codebook, batch=spec.batch or 1,
                                 kmeans_passes=spec.kmeans_passes,
                                 train_fraction=params.train_fraction, seed=s.seed)
            if spec.batch == 0:
                config = dataclasses.replace(config, batch=auto_batch(samples, channels, config, usable))
            configs.append(config)
    except ValueError as exc:
        raise ConfigError(f"invalid params for the codec sweep: {exc}") from None
    if not configs:
        raise ConfigError("codecs: give at least one codec configuration")
    labels = [c.label for c in configs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigError(f"codecs: configuration {twice[0]!r} is given twice",
                          hint="give the copies different parameters or names")
    for c in configs:
        if c.spatial > s.channels:
            raise ConfigError(f"codecs: {c.label} keeps {c.spatial} spatial components of a "
                              f"{s.channels}-channel signal", hint="spatial must be at most channels")
    if feat_p.window > samples:
        raise ConfigError(f"features.window: {feat_p.window} samples is longer than the signal ({samples})")
    stages = [
        Stage.call("synth", synth, params={"synth": attrs.asdict(s)},
                   footprint=_scaling(fp.SYNTH, fp.synth_drivers(synth_p)),
                   timeouts=Timeouts(stall_after=300.0)),
        Stage.call("features", features, inputs=["synth"],
                   params={"window": f.window, "hop": f.hop, "workers": f.workers, "prefetch": f.prefetch},
                   footprint=_scaling(fp.FEATURES, fp.features_drivers(samples, channels, feat_p),
                                      knobs={"workers": Knob(minimum=1)}),
                   retry=RetryPolicy(max_attempts=2, retry_on=RetryOn.OOM)),
    ]
    evals = []
    for c in configs:
        codec = dataclasses.asdict(c)
        train_fp = _scaling(fp.codec_train_spec(c), fp.codec_train_drivers(samples, channels, c))
        eval_fp = _scaling(fp.codec_eval_spec(c), fp.codec_eval_drivers(samples, channels, c,
                                                                   feature_window=feat_p.window))
        stages.append(Stage.call(f"train-{c.label}", train, inputs=["synth"], params={"codec": codec},
                                 footprint=train_fp, retry=RetryPolicy(max_attempts=2, retry_on=RetryOn.OOM)))
        stages.append(Stage.call(f"eval-{c.label}", evaluate,
                                 inputs=["synth", "features", f"train-{c.label}"],
                                 params={"model_stage": f"train-{c.label}"}, footprint=eval_fp))
        evals.append(f"eval-{c.label}")
    stages.append(Stage.call("report", report, inputs=["synth", *evals], footprint=Footprint.fixed("2M"),
                             params={"evals": evals, "title": params.title}))
    return Plan.of(*stages)
