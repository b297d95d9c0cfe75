"""A cookbook of small recipes used by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from blut_core import CookbookSpec, Footprint, Plan, Recipe, RetryPolicy, Stage, Timeouts, hookimpl
from tests.support import stages


@attrs.frozen(kw_only=True)
class Inner:
    size: int = 3
    label: str = "x"


@attrs.frozen(kw_only=True)
class DiamondParams:
    n: int = 1
    ratio: float = 0.5
    verbose: bool = False
    inner: Inner = attrs.field(factory=Inner)


def diamond(p: DiamondParams) -> Plan:
    """a → (b, c) → d, plus a command stage reading a's output."""
    return Plan.of(
        Stage.call("a", stages.emit, params={"n": p.n}),
        Stage.call("b", stages.emit, inputs=["a"], params={"size": p.inner.size}),
        Stage.call("c", stages.emit, inputs=["a"], params={"label": p.inner.label}),
        Stage.call("d", stages.emit, inputs=["b", "c"]),
        Stage.command("e", ["cp", "{inputs[a]}/data.json", "{out}/copied.json"], inputs=["a"]),
    )


@attrs.frozen(kw_only=True)
class Empty:
    pass


def failing(_: Empty) -> Plan:
    return Plan.of(
        Stage.call("a", stages.emit),
        Stage.call("bad", stages.fail_after_output, inputs=["a"]),
        Stage.call("after", stages.emit, inputs=["bad"]),
        Stage.call("side", stages.emit, inputs=["a"]),
    )


def flaky(_: Empty) -> Plan:
    return Plan.of(Stage.call("f", stages.flaky, retry=RetryPolicy(max_attempts=2, delay=0.0)))


def deterministic(_: Empty) -> Plan:
    return Plan.of(Stage.call("d", stages.deterministic_failure,
                              retry=RetryPolicy(max_attempts=3, delay=0.0)))


def cyclic(_: Empty) -> Plan:
    return Plan((Stage.call("x", stages.noop, inputs=["z"]), Stage.call("y", stages.noop, inputs=["x"]),
                 Stage.call("z", stages.noop, inputs=["y"])))


def timeouts(_: Empty) -> Plan:
    return Plan.of(
        Stage.call("polite", stages.stops_on_term, timeouts=Timeouts(soft=0.5, grace=5.0)),
        Stage.call("stubborn", stages.ignores_term, timeouts=Timeouts(soft=0.5, grace=0.5)),
        Stage.call("hard", stages.stops_on_term, timeouts=Timeouts(hard=0.5)),
        Stage.call("stall", stages.beats_then_hangs, timeouts=Timeouts(stall_after=0.5)),
    )


@attrs.frozen(kw_only=True)
class NanParams:
    bad: str = "nan"


def nan(p: NanParams) -> Plan:
    return Plan.of(
        Stage.call("a", stages.emit),
        Stage.call("train", stages.reports_nan, inputs=["a"], params={"bad": p.bad}),
        Stage.call("evaluate", stages.emit, inputs=["train"]),
        Stage.call("report", stages.emit, inputs=["evaluate"]),
        Stage.call("other", stages.emit, inputs=["a"]),
    )


def long(_: Empty) -> Plan:
    return Plan.of(
        Stage.call("quick", stages.emit),
        Stage.call("slow1", stages.forks_and_sleeps, inputs=["quick"]),
        Stage.call("slow2", stages.forks_and_sleeps, inputs=["quick"]),
    )


def resumable(_: Empty) -> Plan:
    return Plan.of(
        Stage.call("first", stages.emit),
        Stage.call("train", stages.counts_with_checkpoints, inputs=["first"]),
        Stage.call("last", stages.emit, inputs=["train"]),
    )


def missing_command(_: Empty) -> Plan:
    return Plan.of(
        Stage.command("ghost", ["/nonexistent/blut-test-command", "{out}"]),
        Stage.call("fine", stages.emit),
    )


@attrs.frozen(kw_only=True)
class MemloadParams:
    stages: int = 4
    footprint: str = "6G"
    mb: int = 64
    seconds: float = 1.0
    tag: str = ""


def memload(p: MemloadParams) -> Plan:
    """Independent stages whose declared footprints together exceed the box."""
    return Plan.of(*(
        Stage.call(f"m{i}", stages.holds_memory, cache=False,
                   params={"mb": p.mb, "seconds": p.seconds, "tag": p.tag},
                   footprint=Footprint.fixed(p.footprint))
        for i in range(p.stages)))


RECIPES = (
        Recipe(name="diamond", summary="a diamond DAG", params=DiamondParams, build=diamond),
        Recipe(name="failing", summary="a stage fails after writing output", params=Empty,
               build=failing),
        Recipe(name="flaky", summary="fails once, then succeeds", params=Empty, build=flaky),
        Recipe(name="deterministic", summary="a never-retried failure", params=Empty,
               build=deterministic),
        Recipe(name="cyclic", summary="a plan with a cycle", params=Empty, build=cyclic),
        Recipe(name="timeouts", summary="soft, hard and stall limits", params=Empty,
               build=timeouts),
        Recipe(name="nan", summary="a stage reports NaN", params=NanParams, build=nan),
        Recipe(name="long", summary="long stages that fork", params=Empty, build=long),
        Recipe(name="missing-command", summary="a command that does not exist",
               params=Empty, build=missing_command),
        Recipe(name="memload", summary="stages that book more than the box together",
               params=MemloadParams, build=memload),
        Recipe(name="resumable", summary="a checkpointing stage", params=Empty, build=resumable),)


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="testbook", summary="Recipes for blut's own tests.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield from RECIPES
