"""``signal:sweep`` and ``signal:tiny`` as blut recipes: registration, plan, a real run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from blut_cookbook_signal import footprints as fp
from blut_cookbook_signal import plugin, sweep
from blut_cookbook_signal.sweep import (
    RUNTIME,
    SWEEP_CODECS,
    CodecSpec,
    FeatureCacheParams,
    SignalParams,
    SweepParams,
    TinyParams,
    build,
)

from blut_core import App, ConfigError, Plan, Stage, StageState
from blut_core.testing import imports_of_commands

GiB = 1 << 30

pytestmark = pytest.mark.blut(cookbooks=["signal"])

MEMORY_STAGES = ("synth", "features", "train-w32s4t8-q4", "eval-w32s4t8-q4", "train-w32s4t8-vq64",
                 "eval-w32s4t8-vq64")


def test_the_cookbook_registers_both_recipes(app: App) -> None:
    (spec,) = plugin.blut_cookbooks()
    assert spec.name == "signal"
    assert [(r.name, r.params) for r in plugin.blut_recipes()] == [("sweep", SweepParams),
                                                                   ("tiny", TinyParams)]
    ref = app.cookbooks.find("signal:sweep")
    assert (ref.qualname, ref.recipe.build, ref.distribution) == ("signal:sweep", build,
                                                                  "blut-cookbook-signal")


def test_listing_showing_and_checking_the_recipes_imports_no_numpy(tmp_path: Path) -> None:
    """Every blut command loads this cookbook: registering, showing and checking its recipes'
    params must not cost numpy (tens of MB and ~0.1 s)."""
    argvs = [["recipes", "list"], ["recipes", "show", "signal:tiny", "--json"],
             ["run", "signal:tiny", "-p", "train_fraction=2", "--no-progress"]]
    ran = imports_of_commands(argvs, ["numpy"], home=tmp_path)
    assert ran.codes == [0, 0, 2], ran  # the bad param: exit 2
    assert ran.imported == [], "numpy was imported"


def test_the_sweep_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "usable_memory", lambda: 21 * GiB)
    plan = build(SweepParams())
    assert isinstance(plan, Plan)
    stages = plan.by_name
    labels = [f"w{c.window}s{c.spatial}t{c.temporal}-"
              + (f"q{c.bits}" if c.quantizer == "scalar" else f"vq{c.codebook}") for c in SWEEP_CODECS]
    assert len(stages) == 3 + 2 * len(labels) and "train-w32s12t8-vq8192" in stages
    assert stages["features"].inputs == ("synth",)
    for label in labels:
        assert stages[f"train-{label}"].inputs == ("synth",)  # trains beside the feature pass
        assert stages[f"eval-{label}"].inputs == ("synth", "features", f"train-{label}")
    assert stages["report"].inputs == ("synth", *(f"eval-{label}" for label in labels))
    # every memory-spending stage declares a scaling footprint fed by its drivers
    feat = stages["features"].footprint
    assert feat is not None and feat.model == "scaling"
    prefetch = stages["features"].params["prefetch"]
    assert feat.drivers == {"channels": 21, "prefetch": prefetch, "window": 1024, "hop": 8,
                            "windows": 47873, "workers": 3}
    assert feat.knobs["workers"].minimum == 1
    assert feat.spec == fp.FEATURES.declaration(runtime=RUNTIME)
    for name, s in stages.items():
        assert s.footprint is not None, name
        if name != "report":
            assert s.footprint.model == "scaling" and s.footprint.drivers, name
    big = build(SweepParams(signal=SignalParams(channels=168), features=FeatureCacheParams(workers=4,
                                                                                          prefetch=64)))
    big_feat = big.by_name["features"].footprint
    assert big_feat is not None and big_feat.drivers["channels"] == 168 and big_feat.drivers["workers"] == 4
    assert fp.FEATURES.predict(big_feat.drivers) > fp.FEATURES.predict({**feat.drivers, "prefetch": 64})


def _need(stage: Stage, **drivers: int) -> int:
    """What the stage's declaration gives at its drivers (some changed): the scaling formula."""
    assert stage.footprint is not None
    at = {**stage.footprint.drivers, **drivers}
    total = int(stage.footprint.spec["base"])
    for key, term in stage.footprint.spec["terms"].items():
        per, every = (term["per"], term["every"]) if isinstance(term, dict) else (term, 1)
        total += -(-math.prod(at[name] for name in key.split("*")) // every) * per
    return total


@pytest.mark.parametrize("usable", [2 * GiB, 7 * GiB, 21 * GiB])
def test_the_defaults_are_sized_from_the_machine(monkeypatch: pytest.MonkeyPatch, usable: int) -> None:
    """What makes the default sweep show admission at work on any box of up to ~24 GiB: three
    workers never fit what blut can give a stage, one does, and the large codebook needs more
    than one worker's share, so it cannot run beside a pool of two (nor of one, next to what
    the pool leaves)."""
    monkeypatch.setattr(sweep, "usable_memory", lambda: usable)
    stages = build(SweepParams()).by_name
    pool, big = stages["features"], stages["train-w32s12t8-vq8192"]
    assert _need(pool) > usable                   # as asked: never admitted as it is
    one, two = _need(pool, workers=1), _need(pool, workers=2)
    assert two < usable                           # two workers fit an idle box ...
    share = one - _need(pool, workers=0)
    assert _need(big) > share                     # ... but not with the large codebook beside
    assert _need(big) <= sweep.AUTO_BATCH_SHARE * usable
    assert big.params["codec"]["batch"] >= 1
    assert stages["train-w64s8t16-q8"].params["codec"]["batch"] == 1024  # only batch=0 is sized


def test_an_unknown_machine_gets_fixed_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "usable_memory", lambda: 0)
    stages = build(SweepParams()).by_name
    assert stages["features"].params["prefetch"] == 64
    assert stages["train-w32s12t8-vq8192"].params["codec"]["batch"] == 128
    # given sizes are not touched, and nothing is probed
    monkeypatch.setattr(sweep, "usable_memory", lambda: pytest.fail("probed"))
    fixed = build(SweepParams(features=FeatureCacheParams(prefetch=32),
                              codecs=[CodecSpec(batch=64)])).by_name
    assert fixed["features"].params["prefetch"] == 32
    assert fixed["train-w64s8t16-q8"].params["codec"]["batch"] == 64


def test_bad_sweeps_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="keeps 12 spatial components of a 8-channel signal"):
        build(SweepParams(signal=SignalParams(channels=8), codecs=[CodecSpec(spatial=12)]))
    with pytest.raises(ConfigError, match="given twice"):
        build(SweepParams(codecs=[CodecSpec(), CodecSpec()]))
    with pytest.raises(ConfigError, match="temporal"):
        build(SweepParams(codecs=[CodecSpec(window=8, temporal=16)]))


def test_a_tiny_sweep_runs_and_stays_within_its_declarations(run_recipe: Any,
                                                              assert_peak_within_declaration: Any) -> None:
    summary = run_recipe("signal:tiny")
    assert summary.outcome == "ok"
    assert [s.state for s in summary.stages] == [StageState.OK] * 9
    run = Path(summary.run_dir) / "stages"
    report = (run / "report" / "out" / "report.md").read_text()
    assert report.startswith("# Codec sweep (tiny)\n")
    for label in ("w32s4t8-q4", "w32s6t16-q8", "w32s4t8-vq64"):
        assert f"| {label} |" in report
    results = json.loads((run / "report" / "out" / "results.json").read_text())
    by = {r["config"]: r for r in results}
    assert by["w32s6t16-q8"]["snr_db"] > by["w32s4t8-q4"]["snr_db"]
    assert by["w32s4t8-vq64"]["compression_ratio"] > by["w32s4t8-q4"]["compression_ratio"]
    assert json.loads((run / "features" / "out" / "features.json").read_text())["windows"] == 24
    for stage in MEMORY_STAGES:
        assert_peak_within_declaration(summary, stage)


def test_the_sweep_is_deterministic(run_recipe: Any) -> None:
    from blut_core import ExecOptions

    params: dict[str, Any] = {"signal": {"duration_s": 12.0}, "codecs": [{"window": 32, "spatial": 4,
                                                                          "temporal": 8, "batch": 16}]}
    first = run_recipe("signal:tiny", **params)
    again = run_recipe("signal:tiny", options=ExecOptions(no_cache=True), **params)
    assert first.outcome == again.outcome == "ok"
    hashes = [{s.stage: s.output_hash for s in r.stages} for r in (first, again)]
    assert hashes[0] == hashes[1]  # every stage's output, bit for bit
    other = run_recipe("signal:tiny", **{**params, "signal": {"duration_s": 12.0, "seed": 5}})
    assert {s.stage: s.output_hash for s in other.stages}["synth"] != hashes[0]["synth"]
