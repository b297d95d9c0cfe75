"""Escalation converges: 2× liars run on their first retry, 3× liars by their second; every
escalated cap is clamped to the box, and a stage killed at the clamp fails in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from blut_core import (
    App,
    BrokerConfig,
    CalibrationStore,
    Classification,
    Launch,
    Ledger,
    StageOutcome,
    StageState,
)
from blut_core.model.sizes import GiB, MiB, format_size
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events
from tests.broker.boxed import memory_box, run_in_box
from tests.broker.made_up import FakeAttempt, fixed_stage, made_up_policy


def round_trips(app: App, tmp: Path, declared: int, uses: int, box: int,
                **cfg: Any) -> tuple[int, list[int]]:
    """OOM kills before a stage declaring ``declared`` and using ``uses`` bytes runs, on a
    made-up box of ``box`` bytes; and the caps it was given."""
    store = CalibrationStore(tmp / f"calibration-{declared}-{uses}-{box}.json")
    policy = made_up_policy(app, box=box, store=store, recipe="memtest:liar",
                            ledger=Ledger(tmp / "ledger.json"), **cfg)
    stage = fixed_stage("liar", declared)
    caps: list[int] = []
    for kills in range(12):
        [launch] = policy.choose([stage], running=[])
        assert isinstance(launch, Launch) and launch.cap is not None
        caps.append(launch.cap)
        ok = launch.cap >= uses
        policy.finished(FakeAttempt(stage, launch.cap),  # type: ignore[arg-type]
                        StageOutcome(stage="liar", attempt=kills + 1,
                                     state=StageState.OK if ok else StageState.FAILED,
                                     classification=Classification.OK if ok else Classification.OOM,
                                     peak_bytes=uses if ok else launch.cap))
        if ok:
            policy.close()
            return kills, caps
    raise AssertionError(f"never fitted: caps {caps}")


@pytest.mark.parametrize("box", [6 * GiB, 24 * GiB, 256 * GiB])
@pytest.mark.parametrize("declared", [64 * MiB, 256 * MiB, GiB, 4 * GiB])
def test_a_2x_liar_runs_on_its_first_retry_and_a_3x_liar_by_its_second(
        app: App, tmp_path: Path, declared: int, box: int) -> None:
    ceiling = box - BrokerConfig().floor_for(box)
    if 3 * declared > ceiling:
        pytest.skip("a 3× liar cannot fit this box at all")
    two, caps2 = round_trips(app, tmp_path, declared, 2 * declared, box)
    three, caps3 = round_trips(app, tmp_path, declared, 3 * declared, box)
    assert two <= 1 and three <= 2, (caps2, caps3)
    assert max(caps2 + caps3) <= ceiling


def test_the_old_growth_took_four_round_trips_and_the_knobs_stay_configurable(
        app: App, tmp_path: Path) -> None:
    # the reported case: a 6 GiB box, the cap grown by ×1.25 or +96 MiB a step
    kills, _ = round_trips(app, tmp_path, GiB, 3 * GiB, 6 * GiB, escalation_factor=1.25)
    assert kills == 4
    assert BrokerConfig.from_environ({"BLUT_ESCALATION_FACTOR": "1.5"}).escalation_factor == 1.5
    assert BrokerConfig().escalation_factor == 2.0


@pytest.mark.parametrize("value", ["1", "0.5", "nan", "inf", "x", "-2"])
def test_a_bad_escalation_factor_is_one_config_error(value: str) -> None:
    from blut_core import ConfigError

    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_environ({"BLUT_ESCALATION_FACTOR": value})
    assert "BLUT_ESCALATION_FACTOR" in info.value.message


def test_every_escalated_cap_is_clamped_to_what_the_box_can_give(app: App, tmp_path: Path) -> None:
    box = 4 * GiB
    ceiling = box - BrokerConfig().floor_for(box)       # 3 GiB
    kills, caps = round_trips(app, tmp_path, 256 * MiB, ceiling, box)
    assert caps[-1] == ceiling and all(c <= ceiling for c in caps) and kills == 3


def _finished(run_dir: Path) -> list[dict[str, Any]]:
    return [e for e in read_events(run_dir / "status.jsonl") if e["event"] == "stage_finished"]


@pytest.mark.cgroup
@pytest.mark.parametrize(("mb", "attempts"), [(1280, 2), (1900, 3)])
def test_real_liars_converge(app: App, caged: str, mb: int, attempts: int) -> None:
    """Declares 640 MiB, uses 2× (1280 MiB) or 3× (1900 MiB): under real cgroup caps."""
    summary = start_run(app, prepare(app, "memtest:hog", overrides=[
        f"mb={mb}", "declared=640M", "attempts=1"]))
    [hog] = summary.stages
    assert summary.outcome == "ok" and hog.attempt == attempts
    kinds = [e["classification"] for e in _finished(summary.run_dir)]
    assert kinds == ["oom"] * (attempts - 1) + ["ok"]
    again = start_run(app, prepare(app, "memtest:hog", overrides=[
        f"mb={mb}", "declared=640M", "attempts=1"]))
    assert again.stages[0].attempt == 1  # the next run starts from what it needed


@pytest.mark.cgroup
def test_a_stage_killed_at_the_box_limit_fails_in_one_line(caged: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with memory_box(3 * GiB // 2) as box:  # 1.5 GiB box − 1 GiB floor: 512 MiB at most
        result = run_in_box(box, "run", "memtest:hog", "--json", "-p", "mb=768", "-p",
                            "declared=64M", "-p", "attempts=1", home=home, tmp=tmp_path)
        assert result.returncode == 1, result.stderr[-2000:]
        summary = json.loads(result.stdout)
        [hog] = summary["stages"]
        error = hog["error"]
        assert "\n" not in error and "Traceback" not in result.stderr
        caps = [e["cap_bytes"] for e in _finished(Path(summary["run_dir"]))]
        assert all(c <= 512 * MiB for c in caps) and caps[-1] > 384 * MiB
        assert hog["attempts"] == len(caps) <= 4
        # the last cap is what the box could give: 512 MiB less what blut itself holds in it
        assert f"cap of {format_size(caps[-1])}" in error and "the most this box can give" in error
        assert "1.5 GiB box − 1.0 GiB floor − " in error and "held by other processes" in error
        assert "× its declared footprint of 64.0 MiB" in error

        # the next run knows: the stage is refused without another kill (exit 3), in one line
        again = run_in_box(box, "run", "memtest:hog", "-p", "mb=768", "-p", "declared=64M",
                           "-p", "attempts=1", home=home, tmp=tmp_path)
        assert again.returncode == 3, again.stderr[-2000:]
        assert f"'hog' was OOM-killed at {format_size(caps[-1])}" in again.stderr
        assert "Traceback" not in again.stderr
