"""The memory policy with a made-up machine: waiting, booking, escalation, exhaustion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from blut_core import (
    App,
    BrokerConfig,
    CalibrationKey,
    CalibrationStore,
    Classification,
    Footprint,
    Launch,
    Ledger,
    MemoryPolicy,
    Probe,
    Refusal,
    Stage,
    StageOutcome,
    StageState,
)
from blut_core.broker.resolve import Estimator
from blut_core.broker.sizes import GiB, MiB
from tests.broker import stages_mem


def _policy(app: App, tmp_path: Path, box: int, available: int, **cfg: Any) -> MemoryPolicy:
    store = CalibrationStore(tmp_path / "calibration.json")
    config = BrokerConfig(**cfg)
    snap = Probe(mem_total=box, mem_available=available)
    return MemoryPolicy(estimator=Estimator(app.registry, "memtest:x", store, config),
                        ledger=Ledger(tmp_path / "ledger.json"), config=config,
                        probe_fn=lambda: snap)


def _stage(name: str, memory: str) -> Stage:
    return Stage.call(name, stages_mem.hog, footprint=Footprint.fixed(memory))


@attrs.define
class FakeHandle:
    pid: int | None = None


@attrs.define
class FakeAttempt:
    stage: Stage
    cap: int | None
    handle: FakeHandle = attrs.field(factory=FakeHandle)


def test_books_until_the_box_is_full_then_waits(app: App, tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=8 * GiB, available=8 * GiB, floor=GiB)
    stages = [_stage(f"s{i}", "3G") for i in range(3)]
    first = policy.choose(stages, running=["busy"])  # type: ignore[list-item]
    assert [d.stage.name for d in first] == ["s0", "s1"]   # 7 GiB free: two fit
    assert all(isinstance(d, Launch) and d.cap and d.cap > 3 * GiB for d in first)
    assert policy.next_check() is not None
    assert policy.choose(stages[2:], running=["busy"]) == []  # type: ignore[list-item]
    policy.finished(FakeAttempt(stages[0], first[0].cap),  # type: ignore[arg-type]
                    StageOutcome(stage="s0", attempt=1, state=StageState.OK,
                                 classification=Classification.OK))
    again = policy.choose(stages[2:], running=["busy"])  # type: ignore[list-item]
    assert [d.stage.name for d in again] == ["s2"] and again[0].waited >= 0  # type: ignore[union-attr]


def test_waiting_alone_times_out_as_a_refusal(app: App, tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=8 * GiB, available=2 * GiB, floor=GiB, wait_timeout=0.0)
    out = policy.choose([_stage("big", "4G")], running=[])
    assert isinstance(out[0], Refusal) and "waited" in out[0].reason


def test_oom_escalates_then_refuses_with_one_message(app: App, tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=1 * GiB, available=1 * GiB, floor=200 * MiB,
                     headroom=50 * MiB, escalation_step=100 * MiB)
    stage = _stage("grow", "300M")
    oom = StageOutcome(stage="grow", attempt=1, state=StageState.FAILED,
                       classification=Classification.OOM)
    caps = []
    for _ in range(10):
        d = policy.choose([stage], running=[])[0]
        if isinstance(d, Refusal):
            break
        caps.append(d.cap)
        policy.finished(FakeAttempt(stage, d.cap), oom)  # type: ignore[arg-type]
    assert caps[0] == 350 * MiB and caps == sorted(caps) and len(set(caps)) == len(caps)
    assert caps[-1] == 824 * MiB                          # the ceiling: box − floor
    assert isinstance(d, Refusal)
    assert "'grow'" in d.reason and "824.0 MiB" in d.reason and "1.0 GiB box" in d.reason
    entry = policy.estimator.store.get(CalibrationKey.of("memtest:x", "grow", {}))
    assert entry is not None and entry.source == "oom_corrected" and entry.peak == 824 * MiB
