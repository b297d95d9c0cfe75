"""The ready set as the executor sees it turn after turn: priority order while stages leave
and join, backoff, the ``ending`` set, branches a failed or pruned stage blocks, each stage
handed out once for its cache look-up, and a policy that reads only the front of a long
ready set."""

from __future__ import annotations

import random
import time

import attrs

from blut_core import Plan, Stage
from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.run.readiness import Offered, Readiness
from blut_core.run.scheduling import BoundedPolicy
from tests.support import stages


@attrs.define
class Sized(BoundedPolicy):
    """A bounded policy that knows each stage's size (the ready set's second key)."""

    sizes: dict[str, int] = attrs.field(factory=dict)

    def size_hint(self, stage: Stage) -> int:
        return self.sizes.get(stage.name, 0)


def ok(name: str) -> StageOutcome:
    return StageOutcome(stage=name, attempt=1, state=StageState.OK, classification=Classification.OK)


def failed(name: str) -> StageOutcome:
    return StageOutcome(stage=name, attempt=1, state=StageState.FAILED,
                        classification=Classification.ERROR)


def random_dag(n: int, seed: int) -> tuple[Plan, dict[str, int]]:
    """``n`` stages, each with up to three inputs among the earlier ones, of varied size."""
    rng = random.Random(seed)
    made: list[Stage] = []
    for i in range(n):
        k = rng.choice([0, 0, 1, 1, 2, 3]) if i else 0
        inputs = sorted({made[rng.randrange(i)].name for _ in range(k)}) if i else []
        made.append(Stage.call(f"s{i:03d}", stages.noop, inputs=inputs))
    return Plan.of(*made), {s.name: rng.randrange(1, 1000) for s in made}


def pruned(name: str) -> StageOutcome:
    return StageOutcome(stage=name, attempt=1, state=StageState.PRUNED,
                        classification=Classification.PRUNED)


def blocked_by_definition(order: list[Stage], outcomes: dict[str, StageOutcome],
                          running: set[str]) -> list[StageOutcome]:
    """Every stage in plan order with a failed or pruned input, its outcome recorded before
    the next is looked at (what it blocks in turn is blocked in the same pass)."""
    seen, out = dict(outcomes), []
    for s in order:
        bad = [i for i in s.inputs if i in seen and not seen[i].ok]
        if s.name in seen or s.name in running or not bad:
            continue
        cut = any(seen[i].state is StageState.PRUNED for i in bad)
        seen[s.name] = o = StageOutcome(
            stage=s.name, attempt=0,
            state=StageState.PRUNED if cut else StageState.UPSTREAM_FAILED,
            classification=Classification.PRUNED if cut else Classification.ERROR,
            error=f"input {bad[0]!r} {seen[bad[0]].state.value}")
        out.append(o)
    return out


def expected(rd: Readiness, outcomes: dict[str, StageOutcome], running: set[str],
             ending: set[str], not_before: dict[str, float]) -> list[str]:
    """The ready set by definition: every input ok, no outcome, not running, ending or
    backing off, in the run's priority order."""
    now = time.time()
    return [s.name for s in rd.by_priority
            if all(i in outcomes and outcomes[i].ok for i in s.inputs)
            and s.name not in outcomes and s.name not in running and s.name not in ending
            and not_before.get(s.name, 0.0) <= now]


def test_the_ready_set_keeps_priority_order_as_stages_leave_and_join() -> None:
    for seed in range(6):
        plan, sizes = random_dag(400, seed)
        rng = random.Random(seed)
        rd = Readiness(plan, plan.topological(), Sized(max_parallel=4, sizes=sizes))
        outcomes: dict[str, StageOutcome] = {}
        running: set[str] = set()
        ending: set[str] = set()
        not_before: dict[str, float] = {}
        handed: list[str] = []
        turns = 0
        while len(outcomes) < len(plan.stages) and turns < 5000:
            turns += 1
            handed += [s.name for s in rd.joined(outcomes)]
            want_blocked = blocked_by_definition(rd.order, outcomes, running)
            got_blocked = []
            for o in rd.blocked(outcomes, running):  # recorded as read, as the executor does
                outcomes[o.stage] = o
                rd.settled(o.stage, False, failed=True)
                got_blocked.append(o)
            assert got_blocked == want_blocked
            offered = rd.ready(outcomes, running, ending, not_before)
            want = expected(rd, outcomes, running, ending, not_before)
            front = rng.randrange(0, 4)
            assert [s.name for s in offered[:front]] == want[:front]  # reading only the front...
            assert [s.name for s in offered] == want  # ...then the rest: the same order
            assert len(offered) == len(want) and bool(offered) == bool(want)
            for name in want[: rng.randrange(0, 4)]:
                running.add(name)
            ending.clear()
            for name in rng.sample(sorted(running), k=min(len(running), rng.randrange(0, 3))):
                running.discard(name)
                roll = rng.random()
                if roll < 0.1:
                    not_before[name] = time.time() + (60 if rng.random() < 0.5 else -1)
                elif roll < 0.2:
                    ending.add(name)  # ended, not finished yet: offered to nobody
                else:
                    outcomes[name] = failed(name) if roll < 0.23 else pruned(name) \
                        if roll < 0.26 else ok(name)
                    rd.settled(name, outcomes[name].ok, failed=not outcomes[name].ok)
                    not_before.pop(name, None)
            for name in [n for n, t in not_before.items() if t > time.time()]:
                if rng.random() < 0.2:
                    not_before[name] = 0.0  # its backoff is over
        assert len(outcomes) == len(plan.stages)
        assert sorted(handed) == sorted(set(handed))  # each stage handed out once
        assert set(handed) == {n for n, o in outcomes.items() if o.attempt}  # all that ran


def test_joined_hands_out_newly_ready_stages_in_priority_order() -> None:
    roots = [Stage.call(f"r{i}", stages.noop) for i in range(5)]
    kids = [Stage.call(f"k{i}", stages.noop, inputs=["r0"]) for i in range(4)]
    plan = Plan.of(*roots, *kids)
    sizes = {"r3": 50, "r1": 40, "k2": 9, "k0": 7}
    rd = Readiness(plan, plan.topological(), Sized(max_parallel=2, sizes=sizes))
    first = [s.name for s in rd.joined({})]
    assert first[:2] == ["r0", "r3"] and set(first) == {s.name for s in roots}  # r0 leads a chain
    assert rd.joined({}) == []
    outcomes = {"r0": ok("r0")}
    rd.settled("r0", True, failed=False)
    assert [s.name for s in rd.joined(outcomes)] == ["k2", "k0", "k1", "k3"]
    assert [s.name for s in rd.ready(outcomes, (), (), {})][:3] == ["r3", "r1", "k2"]


def test_offered_reads_its_source_only_as_far_as_it_is_read() -> None:
    pulled: list[int] = []

    def source() -> object:
        for i in range(100):
            pulled.append(i)
            yield Stage.call(f"s{i}", stages.noop)

    offered = Offered(source())  # type: ignore[arg-type]
    assert offered and len(pulled) == 1
    assert [s.name for s in offered[:2]] == ["s0", "s1"] and len(pulled) == 2
    for s in offered:
        if s.name == "s4":
            break
    assert len(pulled) == 5
    assert offered[-1].name == "s99" and len(offered) == 100
    assert [s.name for s in offered][:3] == ["s0", "s1", "s2"]  # walked again: the same
    assert not Offered(iter(()))
