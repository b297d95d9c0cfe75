"""Small stages are given memory from one lease per run; the ledger always counts all of it.

Each policy here is a run (two of them share one ledger file, as two ``blut run`` processes
on one machine do) on a made-up machine, so every number is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core import (
    App,
    Classification,
    Launch,
    Ledger,
    MemoryPolicy,
    Probe,
    StageOutcome,
    StageState,
)
from blut_core.broker.ledger import LEASE_LABEL, Transaction
from blut_core.model.sizes import GiB, MiB
from blut_core.run import policy as policy_module
from tests.broker.made_up import FakeAttempt, FakeHandle, fixed_stage, made_up_policy


class CountingLedger(Ledger):
    """A ledger that counts its transactions (each one takes the lock and reads the file)."""

    transactions = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.transactions += 1
        with super().transaction() as txn:
            yield txn


def _policy(app: App, path: Path, box: int, *, floor: int = GiB,
            max_parallel: int = 4) -> tuple[MemoryPolicy, CountingLedger]:
    ledger = CountingLedger(path)
    return made_up_policy(app, box=box, ledger=ledger, floor=floor, max_parallel=max_parallel), ledger


_stage = fixed_stage


def _ok(name: str) -> StageOutcome:
    return StageOutcome(stage=name, attempt=1, state=StageState.OK,
                        classification=Classification.OK)


def _booked(path: Path) -> dict[str, int]:
    return {b.label: b.bytes for b in Ledger(path).bookings()}


def test_small_stages_run_from_one_lease_with_few_ledger_transactions(app: App,
                                                                       tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    policy, ledger = _policy(app, path, box=16 * GiB)
    todo = [_stage(f"s{i}", "100M") for i in range(40)]
    running: dict[str, FakeAttempt] = {}
    peak_given = 0
    while todo or running:
        for d in policy.choose(todo, list(running.values())):  # type: ignore[arg-type]
            assert isinstance(d, Launch) and d.footprint == 100 * MiB
            todo.remove(d.stage)
            running[d.stage.name] = FakeAttempt(d.stage, d.cap)
            policy.started(running[d.stage.name])  # type: ignore[arg-type]
        given = sum(policy._admitted[n].footprint for n in running)
        peak_given = max(peak_given, given)
        booked = _booked(path)
        # the ledger shows one booking for all of them, never less than they were given
        assert set(booked) <= {LEASE_LABEL} and booked.get(LEASE_LABEL, 0) >= given
        name = sorted(running)[0]
        policy.finished(running.pop(name), _ok(name))  # type: ignore[arg-type]
    assert peak_given == 4 * 100 * MiB
    # the lease is booked once (and grown at most once or twice); no stage takes the lock
    assert ledger.transactions <= 4
    # the run idles: its lease goes back
    policy.choose([], [])
    assert _booked(path) == {}


def test_another_run_counts_the_whole_lease_as_booked(app: App, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    box, floor = 16 * GiB, GiB
    small, _ = _policy(app, path, box, floor=floor)
    big, _ = _policy(app, path, box, floor=floor)
    (first,) = small.choose([_stage("s0", "512M")], [])
    lease = _booked(path)[LEASE_LABEL]
    assert lease > 512 * MiB  # a few stages' worth: the next small ones need no lock
    # the other run may book only what the lease leaves: box − floor − the whole lease
    fits = (box - floor - lease) // MiB
    assert big.choose([_stage("b0", f"{fits + 1}M")], []) == []  # it waits
    (admitted,) = big.choose([_stage("b1", f"{fits}M")], [])
    assert isinstance(admitted, Launch)
    assert sum(_booked(path).values()) <= box - floor
    # the small run, now squeezed, still gives out only what its lease holds
    more = small.choose([_stage(f"s{i}", "512M") for i in range(1, 4)],
                        [FakeAttempt(first.stage, None)])  # type: ignore[list-item]
    given = 512 * MiB * (1 + len(more))
    assert _booked(path)[LEASE_LABEL] >= given
    assert sum(_booked(path).values()) <= box - floor


def test_a_big_stage_of_the_same_run_gets_the_leases_slack(app: App, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    box, floor = 8 * GiB, GiB
    policy, _ = _policy(app, path, box, floor=floor)
    (small,) = policy.choose([_stage("s0", "256M")], [])
    assert _booked(path)[LEASE_LABEL] > 256 * MiB
    # 7 GiB can be given out; 256 MiB of it runs s0: a stage of all the rest must fit
    (big,) = policy.choose([_stage("big", f"{7 * 1024 - 256}M")],
                           [FakeAttempt(small.stage, None)])  # type: ignore[list-item]
    assert isinstance(big, Launch)
    booked = _booked(path)
    assert booked[LEASE_LABEL] == 256 * MiB and booked["big"] == (7 * 1024 - 256) * MiB
    assert sum(booked.values()) <= box - floor


def test_the_lease_goes_back_when_the_run_ends(app: App, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    policy, _ = _policy(app, path, box=16 * GiB)
    launched = policy.choose([_stage("s0", "64M"), _stage("s1", "64M")], [])
    assert len(launched) == 2 and LEASE_LABEL in _booked(path)
    policy.close()
    assert _booked(path) == {}


def test_memory_another_process_took_is_not_given_out_from_the_lease(app: App,
                                                                     tmp_path: Path) -> None:
    """The lease skips the lock, not the probe: a small stage that no longer fits what is
    free on the machine is decided under the lock, against the machine, and waits."""
    path = tmp_path / "ledger.json"
    snaps = [Probe(mem_total=16 * GiB, mem_available=16 * GiB)]
    policy = made_up_policy(app, ledger=Ledger(path), probe_fn=lambda: snaps[-1], max_parallel=4,
                            floor=GiB)
    (first,) = policy.choose([_stage("s0", "300M")], [])
    assert _booked(path)[LEASE_LABEL] > 600 * MiB
    snaps.append(Probe(mem_total=16 * GiB, mem_available=GiB + 200 * MiB))  # someone else ate it
    policy._probed_at = 0.0  # the next turn
    assert policy.choose([_stage("s1", "300M")], [FakeAttempt(first.stage, None)]) == []  # type: ignore[list-item]
    assert "s1" in policy.view().waiting


def test_a_stage_that_runs_on_gets_a_booking_of_its_own(app: App, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PROMOTE seconds a leased stage is booked on its own, with its cgroup (so that it
    is shown as any booked stage and counts only what it does not use yet)."""
    path = tmp_path / "ledger.json"
    policy, _ = _policy(app, path, box=16 * GiB)
    short, long = _stage("short", "100M"), _stage("long", "100M")
    launched = policy.choose([short, long], [])
    assert len(launched) == 2
    lease = _booked(path)[LEASE_LABEL]
    cage = tmp_path / "cage"
    cage.mkdir()
    attempts = {d.stage.name: FakeAttempt(d.stage, None) for d in launched}
    attempts["long"].handle = FakeHandle(pid=1, cgroup=str(cage))
    for a in attempts.values():
        policy.started(a)  # type: ignore[arg-type]
    policy.finished(attempts["short"], _ok("short"))  # type: ignore[arg-type]
    policy.choose([], [attempts["long"]])  # type: ignore[list-item]
    assert set(_booked(path)) == {LEASE_LABEL}  # not yet
    monkeypatch.setattr(policy_module, "PROMOTE", 0.0)
    policy.choose([], [attempts["long"]])  # type: ignore[list-item]
    (own,) = [b for b in Ledger(path).bookings() if b.label == "long"]
    assert own.bytes == 100 * MiB and own.cgroup == str(cage)
    # moved, not added: the machine sees what it saw before, and the lease kept its slack
    assert sum(_booked(path).values()) <= lease
    policy.finished(attempts["long"], _ok("long"))  # type: ignore[arg-type]
    policy.choose([], [])
    assert _booked(path) == {}


def test_a_torn_ledger_gets_the_lease_back_with_what_it_gave_out(app: App, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    policy, _ = _policy(app, path, box=16 * GiB)
    launched = policy.choose([_stage("s0", "1G"), _stage("s1", "1G")], [])
    assert len(launched) == 2
    path.write_text("{")  # torn: the next reader starts over
    policy.choose([_stage("big", "4G")], [FakeAttempt(d.stage, None) for d in launched])  # type: ignore[misc]
    booked = _booked(path)
    assert booked[LEASE_LABEL] >= 2 * GiB and booked["big"] == 4 * GiB
