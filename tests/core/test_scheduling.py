"""The order the ready set is offered in: critical path, size, and the simulated search."""

from __future__ import annotations

import random

from blut_core import Plan, Stage
from blut_core.run.scheduling import best_order, critical_paths, expected_makespan, simulate
from tests.support import stages


def s(name: str, *inputs: str, seconds: float = 1.0) -> Stage:
    return Stage.call(name, stages.noop, inputs=list(inputs), expected_seconds=seconds)


def wide(n: int, seed: int) -> tuple[Plan, dict[str, float], dict[str, int]]:
    """A prep stage, ``n`` stages of varied size and duration, a merge (sizes in % of 100)."""
    rng = random.Random(seed)
    d = {"prep": 0.3, "merge": 0.3}
    sizes = {"prep": 5, "merge": 10}
    for i in range(n):
        d[f"w{i:02d}"] = round(rng.uniform(0.4, 2.0), 1)
        sizes[f"w{i:02d}"] = rng.randint(8, 45)
    middle = [s(f"w{i:02d}", "prep", seconds=d[f"w{i:02d}"]) for i in range(n)]
    plan = Plan.of(s("prep", seconds=0.3), *middle,
                   s("merge", *(m.name for m in middle), seconds=0.3))
    return plan, d, sizes


def ranked(plan: Plan, sizes: dict[str, int]) -> list[str]:
    rank = critical_paths(plan, lambda st: st.expected_seconds)
    return [st.name for st in sorted(plan.topological(), key=lambda st: (-rank[st.name],
                                                                          -sizes[st.name]))]


def test_critical_path_counts_seconds_not_stages() -> None:
    plan = Plan.of(s("a", seconds=1), s("long", "a", seconds=5), s("b1", "a"), s("b2", "b1"),
                   s("b3", "b2"))
    rank = critical_paths(plan, lambda st: st.expected_seconds)
    assert rank["long"] == 5 and rank["b1"] == 3 and rank["a"] == 6
    unknown = critical_paths(plan, lambda st: None)  # no durations: count stages
    assert unknown["b1"] == 3 and unknown["long"] == 1


def test_simulation_respects_memory_and_jobs() -> None:
    plan = Plan.of(s("x", seconds=2), s("y", seconds=2), s("z", seconds=2))
    d = {"x": 2.0, "y": 2.0, "z": 2.0}
    sizes = {"x": 60, "y": 60, "z": 30}
    assert simulate(plan, ["x", "y", "z"], d, sizes, capacity=100, jobs=8) == 4.0   # x+z, then y
    assert simulate(plan, ["x", "y", "z"], d, sizes, capacity=None, jobs=1) == 6.0   # one slot
    assert simulate(plan, ["x", "y", "z"], d, sizes, capacity=None, jobs=2) == 4.0
    assert simulate(plan, ["x", "y", "z"], d, {"x": 200}, capacity=100, jobs=8) == float("inf")


def test_simulation_follows_inputs_and_waits_for_memory() -> None:
    plan = Plan.of(s("a", seconds=1), s("big", "a", seconds=3), s("other", seconds=2),
                   s("small", seconds=1))
    d = {"a": 1.0, "big": 3.0, "other": 2.0, "small": 1.0}
    sizes = {"a": 10, "big": 90, "other": 50, "small": 20}
    # a, other, small start at once; big waits for its input, then for other's memory
    assert simulate(plan, ["a", "big", "other", "small"], d, sizes, capacity=100, jobs=8) == 5.0


def test_expected_makespan_adds_overhead_and_spread() -> None:
    plan = Plan.of(s("a"), s("b", "a"), s("c", "b"))
    d = {"a": 1.0, "b": 1.0, "c": 1.0}
    order = ["a", "b", "c"]
    sizes: dict[str, int] = {}
    assert expected_makespan(plan, order, d, sizes, None, 4, spread=0.0, overhead=0.0) == 3.0
    late = expected_makespan(plan, order, d, sizes, None, 4, spread=0.0, overhead=0.5, trials=200)
    assert 4.3 <= late <= 4.7  # 0 to 1 s more per stage, 0.5 s on average
    spread = expected_makespan(plan, order, d, sizes, None, 4, spread=0.1, overhead=0.0, trials=50)
    assert 2.7 <= spread <= 3.3 and spread != 3.0


def test_expected_makespan_counts_packings_that_need_every_byte() -> None:
    plan = Plan.of(s("x"), s("y"))
    d = {"x": 1.0, "y": 1.0}
    sizes = {"x": 50, "y": 50}
    exact = expected_makespan(plan, ["x", "y"], d, sizes, 100, 4, spread=0.0, overhead=0.0,
                              memory_spread=0.0, gap=0.0)
    assert exact == 1.0  # both fit at once, with nothing to spare
    tight = expected_makespan(plan, ["x", "y"], d, sizes, 100, 4, spread=0.0, overhead=0.0,
                              memory_spread=0.1, gap=0.0)
    assert 1.0 < tight < 2.0  # with a little less memory they run one after the other
    apart = expected_makespan(plan, ["x", "y"], d, sizes, 100, 4, spread=0.0, overhead=0.0,
                              memory_spread=0.0, gap=0.25)
    assert apart == 1.25  # started one after the other, a quarter second apart


def test_ends_close_together_are_handled_in_one_pass() -> None:
    plan = Plan.of(s("a"), s("b"), s("big"), s("small", seconds=3))
    d = {"a": 1.0, "b": 1.002, "big": 1.0, "small": 3.0}
    sizes = {"a": 50, "b": 50, "big": 80, "small": 30}
    order = ["a", "b", "big", "small"]

    def span(window: float) -> float:
        return expected_makespan(plan, order, d, sizes, 100, 8, trials=1, spread=0.0,
                                 overhead=0.0, memory_spread=0.0, gap=0.0, window=window)

    assert span(0.0) == 5.0  # one end at a time: small backfills a's memory, big waits for it
    assert span(0.003) == 1.002 + 4.0  # both ends in one pass: big first, then small


def test_search_is_deterministic_and_never_worse() -> None:
    shares = [45, 40, 30, 30, 25, 20, 35, 15, 50, 20, 10, 30, 25]
    plan = Plan.of(*(s(f"t{i}", seconds=1 + (i % 4) * 0.5) for i in range(len(shares))))
    d = {st.name: float(st.expected_seconds or 1) for st in plan}
    sizes = {f"t{i}": v for i, v in enumerate(shares)}
    heuristic = [st.name for st in plan]
    one = best_order(plan, heuristic, d, sizes, capacity=100, jobs=8, budget=10.0)
    two = best_order(plan, heuristic, d, sizes, capacity=100, jobs=8, budget=10.0)
    assert sorted(one) == sorted(heuristic)
    assert expected_makespan(plan, one, d, sizes, 100, 8) <= \
        expected_makespan(plan, heuristic, d, sizes, 100, 8)
    assert one == two  # seeded: the same plan gives the same order


def test_search_keeps_an_order_that_reaches_the_bound() -> None:
    plan = Plan.of(s("a"), s("b", "a", seconds=2), s("c", "a"), s("d", "b", "c"))
    d = {"a": 1.0, "b": 2.0, "c": 1.0, "d": 1.0}
    sizes = {"a": 10, "b": 40, "c": 40, "d": 10}
    heuristic = ["a", "b", "c", "d"]
    assert best_order(plan, heuristic, d, sizes, capacity=100, jobs=4, samples=10_000,
                      budget=10.0) == heuristic
    never = {**sizes, "d": 200}  # nothing can fit d: no order is better
    assert best_order(plan, heuristic, d, never, capacity=100, jobs=4, budget=10.0) == heuristic


def test_search_order_holds_up_when_durations_move() -> None:
    """The chosen order stays better on perturbations it was not tuned on (other seed)."""
    plan, d, sizes = wide(24, seed=7)
    heuristic = ranked(plan, sizes)
    order = best_order(plan, heuristic, d, sizes, capacity=100, jobs=64, budget=10.0)

    def unseen(o: list[str]) -> float:
        return expected_makespan(plan, o, d, sizes, 100, 64, trials=100, seed=12345)

    assert unseen(order) < unseen(heuristic) * 0.99
