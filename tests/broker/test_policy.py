"""The memory policy with a made-up machine: waiting, booking, escalation, exhaustion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blut_core import (
    App,
    CalibrationKey,
    CalibrationStore,
    Classification,
    Launch,
    Ledger,
    MemoryPolicy,
    Refusal,
    StageOutcome,
    StageState,
)
from blut_core.model.sizes import GiB, MiB
from tests.broker.made_up import FakeAttempt, FakeHandle, fixed_stage, made_up_policy


def _policy(app: App, tmp_path: Path, box: int, available: int, max_parallel: int = 64,
            **cfg: Any) -> MemoryPolicy:
    return made_up_policy(app, box=box, available=available, max_parallel=max_parallel,
                          store=CalibrationStore(tmp_path / "calibration.json"),
                          ledger=Ledger(tmp_path / "ledger.json"), **cfg)


_stage = fixed_stage


def test_books_until_the_box_is_full_then_waits(app: App, tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=8 * GiB, available=8 * GiB, floor=GiB)
    stages = [_stage(f"s{i}", "3G") for i in range(3)]
    first = policy.choose(stages, running=["busy"])  # type: ignore[list-item]
    assert [d.stage.name for d in first] == ["s0", "s1"]   # 7 GiB free: two fit
    assert all(isinstance(d, Launch) and d.cap and d.cap > 3 * GiB for d in first)
    assert policy.next_check() is not None
    assert policy.choose(stages[2:], running=["busy"]) == []  # type: ignore[list-item]
    policy.finished(FakeAttempt(stages[0], first[0].cap),  # type: ignore[arg-type, union-attr]
                    StageOutcome(stage="s0", attempt=1, state=StageState.OK,
                                 classification=Classification.OK))
    again = policy.choose(stages[2:], running=["busy"])  # type: ignore[list-item]
    assert [d.stage.name for d in again] == ["s2"] and again[0].waited >= 0  # type: ignore[union-attr]


def test_a_release_is_written_by_the_next_pass_even_with_nothing_ready(app: App,
                                                                     tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=8 * GiB, available=8 * GiB, floor=GiB)
    ledger = Ledger(tmp_path / "ledger.json")
    stage = _stage("s0", "3G")
    (launch,) = policy.choose([stage], running=[])
    assert [b.label for b in ledger.bookings()] == ["s0"]
    policy.finished(FakeAttempt(stage, launch.cap),  # type: ignore[arg-type, union-attr]
                    StageOutcome(stage="s0", attempt=1, state=StageState.OK,
                                 classification=Classification.OK))
    policy.choose([], running=[])  # the executor's next pass: nothing left to start
    assert ledger.bookings() == []


def test_a_started_stage_is_booked_with_the_cgroup_its_launcher_made(app: App,
                                                                     tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=8 * GiB, available=8 * GiB, floor=GiB)
    ledger = Ledger(tmp_path / "ledger.json")
    first, second = _stage("s0", "1G"), _stage("s1", "1G")
    (launch,) = policy.choose([first], running=[])
    cage = tmp_path / "cage"
    cage.mkdir()
    policy.started(FakeAttempt(first, launch.cap,  # type: ignore[arg-type, union-attr]
                               FakeHandle(pid=1, cgroup=str(cage))))
    policy.choose([second], running=["busy"])  # type: ignore[list-item]
    by_label = {b.label: b for b in ledger.bookings()}
    assert by_label["s0"].cgroup == str(cage) and by_label["s1"].cgroup is None


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
    assert caps[0] == 350 * MiB and caps == sorted(caps) and len(set(caps)) == len(caps)  # type: ignore[type-var]
    assert caps[-1] == 824 * MiB                          # the ceiling: box − floor
    assert isinstance(d, Refusal)
    assert "'grow'" in d.reason and "824.0 MiB" in d.reason and "1.0 GiB box" in d.reason
    entry = policy.estimator.store.get(CalibrationKey.of("memtest:x", "grow", {}))
    assert entry is not None and entry.source == "oom_corrected" and entry.peak == 824 * MiB


def test_cpu_bound_limits_concurrency_even_when_memory_fits(app: App, tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=64 * GiB, available=64 * GiB, floor=GiB, max_parallel=2)
    stages = [_stage(f"s{i}", "1G") for i in range(5)]
    first = policy.choose(stages, running=[])
    assert [d.stage.name for d in first] == ["s0", "s1"]
    assert policy.choose(stages[2:], running=["a", "b"]) == []  # type: ignore[list-item]
    assert len(policy.choose(stages[2:], running=["a"])) == 1  # type: ignore[list-item]


def test_a_long_waiting_big_stage_stops_backfill(app: App, tmp_path: Path) -> None:
    policy = _policy(app, tmp_path, box=8 * GiB, available=8 * GiB, floor=GiB)
    policy.reserve_after = 0.0
    big, small = _stage("big", "6G"), _stage("small", "1G")
    assert [d.stage.name for d in policy.choose([_stage("hold", "3G")], running=[])] == ["hold"]
    # big does not fit next to hold; it has waited longer than reserve_after, so small waits too
    assert policy.choose([big, small], running=["hold"]) == []  # type: ignore[list-item]
    policy.reserve_after = 3600.0
    assert [d.stage.name for d in policy.choose([big, small], running=["hold"])] == ["small"]  # type: ignore[list-item]
