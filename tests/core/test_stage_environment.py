"""A stage's environment is the driver's as it is when the stage is prepared, plus blut's variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut_core.model.stage import Stage
from blut_core.process.spec import stage_environment


def _env(stage: Stage, tmp_path: Path) -> dict[str, str]:
    ctx = {"run_id": "r", "attempt": 1, "out_dir": str(tmp_path / "out"),
           "events": str(tmp_path / "events.jsonl"), "params": {}, "inputs": {}}
    return stage_environment(stage, ctx, tmp_path / "context.json", pythonpath="")


def test_each_stage_sees_the_drivers_environment_as_it_is_now(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(name="s", argv=("true",))
    monkeypatch.setenv("BLUT_TEST_KNOB", "one")
    first = _env(stage, tmp_path)
    assert first["BLUT_TEST_KNOB"] == "one" and first["BLUT_STAGE"] == "s"
    first["BLUT_TEST_KNOB"] = "changed by a launcher"  # a copy: the next stage's is its own
    assert _env(stage, tmp_path)["BLUT_TEST_KNOB"] == "one"
    monkeypatch.setenv("BLUT_TEST_KNOB", "two")
    assert _env(stage, tmp_path)["BLUT_TEST_KNOB"] == "two"
    monkeypatch.delenv("BLUT_TEST_KNOB")
    assert "BLUT_TEST_KNOB" not in _env(stage, tmp_path)
