"""``textlm:train`` and ``textlm:small`` as blut recipes: the plan, a real run, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from blut_cookbook_textlm import footprints as fp
from blut_cookbook_textlm import plugin
from blut_cookbook_textlm.corpus import Vocabulary, load_text
from blut_cookbook_textlm.lrsweep import RUNTIME, LrSweepParams, SmallParams, build, train_stage
from blut_cookbook_textlm.train import TrainParams, TrainState, train

from blut_core import App, ConfigError, StageContext, StageState
from blut_core.testing import imports_of_commands

pytestmark = pytest.mark.blut(cookbooks=["textlm"])


def _metrics(run_dir: Path, stage: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in (run_dir / "status.jsonl").read_text().splitlines()]
    return [e for e in events if e.get("event") == "stage_metric" and e.get("stage") == stage]


def test_the_cookbook_registers_both_recipes(app: App) -> None:
    (spec,) = plugin.blut_cookbooks()
    assert spec.name == "textlm"
    assert [(r.name, r.params) for r in plugin.blut_recipes()] == [("train", LrSweepParams),
                                                                   ("small", SmallParams)]
    assert app.cookbooks.find("textlm:train").distribution == "blut-cookbook-textlm"


def test_listing_showing_and_checking_the_recipes_imports_no_numpy(tmp_path: Path) -> None:
    """Every blut command loads this cookbook: registering, showing and checking its recipes'
    params must not cost numpy (tens of MB and ~0.1 s)."""
    argvs = [["recipes", "list"], ["recipes", "show", "textlm:small", "--json"],
             ["run", "textlm:small", "-p", "steps=0", "--no-progress"]]
    ran = imports_of_commands(argvs, ["numpy"], home=tmp_path)
    assert ran.codes == [0, 0, 2], ran  # the bad param: exit 2
    assert ran.imported == [], "numpy was imported"


def test_the_plan_has_one_branch_per_learning_rate() -> None:
    plan = build(LrSweepParams())
    names = [s.name for s in plan.topological()]
    assert sorted(names) == sorted(f"{kind}-lr{lr}" for kind in ("train", "sample")
                                   for lr in ("0.003", "0.01", "0.02", "3"))
    stages = plan.by_name
    assert stages["sample-lr0.01"].inputs == ("train-lr0.01",)
    assert all(not stages[f"train-lr{lr}"].inputs for lr in ("0.003", "0.01", "0.02", "3"))
    train_fp = stages["train-lr0.01"].footprint
    assert train_fp is not None and train_fp.model == "scaling"
    vocab = len(Vocabulary.of(load_text()))
    assert train_fp.drivers == {"batch": 32, "context": 64, "hidden": 128, "vocab": vocab}
    assert train_fp.spec == fp.TRAIN.declaration(runtime=RUNTIME)
    assert stages["train-lr0.01"].params["train"]["checkpoint_every"] == 50
    with pytest.raises(ValueError, match="twice"):
        LrSweepParams(lrs=[0.01, 0.01])
    with pytest.raises(ValueError, match="positive"):
        SmallParams(lrs=[-1.0])


def test_bad_params_are_one_line_errors(run_recipe: Any) -> None:
    with pytest.raises(ConfigError, match="lrs"):
        run_recipe("textlm:small", lrs=[0.01, 0.01])
    with pytest.raises(ConfigError, match="checkpoint_every"):
        run_recipe("textlm:small", checkpoint_every=-1)


def test_a_diverging_rate_is_pruned_while_the_others_train(run_recipe: Any,
                                                          assert_peak_within_declaration: Any) -> None:
    summary = run_recipe("textlm:small")
    assert summary.outcome == "ok"
    state = {s.stage: s.state for s in summary.stages}
    assert state == {"train-lr0.003": StageState.OK, "sample-lr0.003": StageState.OK,
                     "train-lr0.01": StageState.OK, "sample-lr0.01": StageState.OK,
                     "train-lr10": StageState.PRUNED, "sample-lr10": StageState.PRUNED}
    run = Path(summary.run_dir)
    # perplexity every step; the diverging branch's last metric is the NaN that pruned it
    good = _metrics(run, "train-lr0.01")
    assert [m["step"] for m in good] == list(range(1, 41))
    assert all(m["values"]["perplexity"] == pytest.approx(math.exp(m["values"]["loss"])) for m in good)
    assert good[-1]["values"]["perplexity"] < good[0]["values"]["perplexity"] / 3
    bad = _metrics(run, "train-lr10")
    assert [m["step"] for m in bad] == [1, 2] and bad[-1]["values"]["loss"] == "nan"
    # checkpoints every 10 steps through the stage context, the last one at step 40
    events = [json.loads(line) for line in (run / "status.jsonl").read_text().splitlines()]
    assert sum(1 for e in events if e.get("event") == "stage_checkpoint"
               and e.get("stage") == "train-lr0.01") == 4
    saved = TrainState.from_dict(json.loads((run / "stages/train-lr0.01/checkpoint/state.json").read_text()))
    assert saved.step == 40
    samples = (run / "stages/sample-lr0.01/out/samples.txt").read_text()
    assert samples.count("--- sample") == 2 and "The " in samples
    result = json.loads((run / "stages/train-lr0.01/out/result.json").read_text())
    assert result["steps"] == 40 and result["val_loss"] < 3.0
    for stage in ("train-lr0.003", "train-lr0.01", "sample-lr0.01"):
        assert_peak_within_declaration(summary, stage)


def _context(tmp: Path, params: dict[str, Any]) -> StageContext:
    for d in ("out", "work", "checkpoint"):
        (tmp / d).mkdir(exist_ok=True)
    for f in (tmp / "out").iterdir():
        f.unlink()
    return StageContext({"run_id": "r", "stage": "train-lr0.01", "attempt": 1, "params": params,
                         "inputs": {}, "out_dir": str(tmp / "out"), "work_dir": str(tmp / "work"),
                         "checkpoint_dir": str(tmp / "checkpoint"), "knobs": {},
                         "events": str(tmp / "events.jsonl")})


def test_a_stage_resumed_from_its_checkpoint_ends_with_the_uninterrupted_weights(tmp_path: Path) -> None:
    base = TrainParams(lr=0.01, steps=40, batch=16, context=32, hidden=64, checkpoint_every=10, eval_every=0,
                       warmup=10)
    import dataclasses

    # an attempt that got to step 20 (and checkpointed there) ...
    ctx = _context(tmp_path, {"train": {**dataclasses.asdict(base), "steps": 20}})
    train_stage(ctx)
    ctx.close()
    # ... then a new attempt of the 40-step stage picks the checkpoint up
    (tmp_path / "events.jsonl").unlink()
    ctx = _context(tmp_path, {"train": dataclasses.asdict(base)})
    train_stage(ctx)
    ctx.close()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    metrics = [e for e in events if e["event"] == "metric"]
    assert metrics[0]["values"] == {"resumed_from": 20}
    assert [m["step"] for m in metrics[1:]] == list(range(21, 41))
    resumed = TrainState.from_dict(json.loads((tmp_path / "out" / "model.json").read_text()))
    whole = train(load_text(), base).state
    for name, value in whole.params.items():
        np.testing.assert_allclose(resumed.params[name], value, rtol=1e-6, atol=1e-7)
    assert resumed.step == 40
