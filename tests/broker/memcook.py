"""A cookbook of memory-hungry recipes for the broker's tests."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from blut_core import (
    CookbookSpec,
    Footprint,
    Knob,
    Plan,
    Recipe,
    RetryOn,
    RetryPolicy,
    Stage,
    Timeouts,
    hookimpl,
)
from tests.broker import stages_mem


@attrs.frozen(kw_only=True)
class HogParams:
    mb: int = 192
    declared: str = "64M"
    attempts: int = 3
    oom_retries: int = RetryPolicy().oom_retries


def hog(p: HogParams) -> Plan:
    """One stage that declares ``declared`` and touches ``mb`` MiB."""
    return Plan.of(Stage.call("hog", stages_mem.hog, params={"mb": p.mb}, cache=False,
                              footprint=Footprint.fixed(p.declared),
                              retry=RetryPolicy(max_attempts=p.attempts, delay=0.0,
                                                retry_on=RetryOn.OOM, oom_retries=p.oom_retries)))


@attrs.frozen(kw_only=True)
class ScriptParams:
    script: str = "ok"
    attempts: int = 2
    oom_retries: int = 0


def scripted(p: ScriptParams) -> Plan:
    """One stage whose Nth attempt does the Nth word of ``p.script`` (oom, error or ok)."""
    return Plan.of(Stage.call("scripted", stages_mem.scripted, params={"script": p.script},
                              cache=False, footprint=Footprint.fixed("64M"),
                              retry=RetryPolicy(max_attempts=p.attempts, delay=0.0,
                                                retry_on=RetryOn.ANY, oom_retries=p.oom_retries)))


@attrs.frozen(kw_only=True)
class ForkParams:
    pid_file: str = ""
    children: int = 2
    child_mb: int = 96
    linger: float = 0.0
    declared: str = "64M"


def forks(p: ForkParams) -> Plan:
    """One stage whose detached children hold memory together (one attempt: no OOM retry)."""
    return Plan.of(Stage.call("forker", stages_mem.forker, cache=False,
                              params={"pid_file": p.pid_file, "children": p.children,
                                      "child_mb": p.child_mb, "linger": p.linger},
                              footprint=Footprint.fixed(p.declared),
                              retry=RetryPolicy(oom_retries=0)))


@attrs.frozen(kw_only=True)
class KnobParams:
    workers: int = 64
    per_worker: str = "1G"


def knobs(p: KnobParams) -> Plan:
    """A stage whose footprint scales with workers, which admission may lower to 1."""
    fp = Footprint.scaling("16M", {"workers": p.per_worker}, drivers={"workers": p.workers},
                           knobs={"workers": Knob(minimum=1)})
    return Plan.of(Stage.call("train", stages_mem.knobbed, cache=False, footprint=fp))


@attrs.frozen(kw_only=True)
class BadParams:
    memory: str = "12Gb"


def bad(p: BadParams) -> Plan:
    """A stage with whatever memory declaration the test passes."""
    return Plan.of(Stage.call("bad", stages_mem.hog, params={"mb": 16},
                              footprint=Footprint.fixed(p.memory)))


def undeclared(_: BadParams) -> Plan:
    """A stage that declares no footprint."""
    return Plan.of(Stage.call("plain", stages_mem.hog, params={"mb": 16}))


@attrs.frozen(kw_only=True)
class ChainParams:
    tag: str = ""


def probes(p: ChainParams) -> Plan:
    """A chain of stages that record their process: ``a`` uses 96 MiB, ``t`` leaves a thread
    running."""
    spec: list[tuple[str, dict[str, object]]] = [("a", {"mb": 96}), ("b", {}), ("c", {}),
                                                 ("t", {"thread": True}), ("z", {})]
    return Plan.of(*(Stage.call(name, stages_mem.probe, cache=False,
                                inputs=[spec[i - 1][0]] if i else [],
                                params={**params, "tag": p.tag}, footprint=Footprint.fixed("256M"))
                     for i, (name, params) in enumerate(spec)))


RECIPES: tuple[Recipe, ...] = (
    Recipe(name="hog", summary="Touch memory.", params=HogParams, build=hog),
    Recipe(name="forks", summary="Fork memory-holding children.", params=ForkParams, build=forks),
    Recipe(name="scripted", summary="A stage whose attempts do as told.", params=ScriptParams,
           build=scripted),
    Recipe(name="knobs", summary="A right-sizable stage.", params=KnobParams, build=knobs),
    Recipe(name="bad", summary="A bad declaration.", params=BadParams, build=bad),
    Recipe(name="undeclared", summary="No footprint.", params=BadParams, build=undeclared),
    Recipe(name="probes", summary="Stages that record their process.", params=ChainParams,
           build=probes),
)


def commands(p: ChainParams) -> Plan:
    """A chain of command stages, then one killed by a signal (``p.tag == "kill"``)."""
    wait = "sleep 0.5; "  # the first one gives the fork server time to come up
    stages = [Stage.command(f"c{i}", ["sh", "-c", (wait if i == 0 else "") + "echo $$ > {out}/pid"],
                            cache=False,
                            inputs=[f"c{i - 1}"] if i else [], params={"tag": p.tag},
                            footprint=Footprint.fixed("64M"))
              for i in range(6)]
    if p.tag == "kill":
        stages.append(Stage.command("killed", ["sh", "-c", "kill -KILL $$"], cache=False,
                                    inputs=["c5"], footprint=Footprint.fixed("64M")))
    return Plan.of(*stages)


def forked(p: ChainParams) -> Plan:
    """A stage whose forked child returns from the stage function, then stages after it."""
    return Plan.of(Stage.call("forks", stages_mem.fork_returns, cache=False,
                              params={"tag": p.tag}, footprint=Footprint.fixed("64M")),
                   *(Stage.call(f"after{i}", stages_mem.probe, cache=False, inputs=["forks"],
                                params={"tag": p.tag}, footprint=Footprint.fixed("64M"))
                     for i in range(4)))


def logging_chain(p: ChainParams) -> Plan:
    """Stages that each configure the root logger to a file of their own."""
    return Plan.of(*(Stage.call(f"log{i}", stages_mem.logs, cache=False,
                                inputs=[f"log{i - 1}"] if i else [], params={"tag": p.tag},
                                footprint=Footprint.fixed("64M"))
                     for i in range(4)))


def command_timeouts(p: ChainParams) -> Plan:
    """Command stages past their soft timeout: one stops on SIGTERM, one ignores it."""
    polite = 'echo $$ > sh.pid; trap "echo got TERM; exit 0" TERM; sleep 30 & wait'
    stubborn = 'trap "" TERM; sleep 30 & wait'
    fp = Footprint.fixed("64M")
    return Plan.of(
        Stage.command("warmup", ["sleep", "0.5"], cache=False, params={"tag": p.tag}, footprint=fp),
        Stage.command("polite", ["sh", "-c", polite], cache=False, inputs=["warmup"],
                      footprint=fp, timeouts=Timeouts(soft=0.5, grace=5.0)),
        Stage.command("stubborn", ["sh", "-c", stubborn], cache=False, inputs=["warmup"],
                      footprint=fp, timeouts=Timeouts(soft=0.5, grace=0.5)))


RECIPES = (*RECIPES, Recipe(
    name="cmdtimeouts", summary="Command stages that time out.", params=ChainParams,
    build=command_timeouts), Recipe(
    name="logs", summary="Stages that log to their own files.", params=ChainParams,
    build=logging_chain), Recipe(
    name="commands", summary="A chain of command stages.", params=ChainParams, build=commands),
    Recipe(name="forked", summary="A stage that forks.", params=ChainParams, build=forked))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="memtest", summary="Recipes for the broker's tests.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield from RECIPES


@attrs.frozen(kw_only=True)
class SixteenParams:
    stages: int = 16
    smallest: int = 150   # MiB
    largest: int = 600    # MiB
    hold: float = 0.2


def sixteen(p: SixteenParams) -> Plan:
    """Independent stages of ``smallest``…``largest`` MiB that declare no footprint."""
    step = (p.largest - p.smallest) / max(1, p.stages - 1)
    return Plan.of(*(Stage.call(f"s{i:02d}", stages_mem.hold, cache=False,
                                params={"mb": round(p.smallest + i * step), "hold": p.hold})
                     for i in range(p.stages)))


@attrs.frozen(kw_only=True)
class WriterParams:
    mb: int = 768
    declared: str = "128M"


def writer(p: WriterParams) -> Plan:
    """One stage that writes ``mb`` MiB of files under a ``declared`` footprint."""
    return Plan.of(Stage.call("writer", stages_mem.write_files, cache=False,
                              params={"mb": p.mb}, footprint=Footprint.fixed(p.declared)))


@attrs.frozen(kw_only=True)
class GrowsParams:
    input_mb: int = 16
    declared: str = "768M"


def grows(p: GrowsParams) -> Plan:
    """``read`` holds what ``make`` wrote: its memory grows with its input, not its params."""
    return Plan.of(Stage.call("make", stages_mem.make_input, cache=False,
                              params={"mb": p.input_mb}, footprint=Footprint.fixed("64M")),
                   Stage.call("read", stages_mem.read_input, cache=False, inputs=["make"],
                              footprint=Footprint.fixed(p.declared)))


RECIPES = (*RECIPES,
           Recipe(name="sixteen", summary="Undeclared stages of many sizes.", params=SixteenParams,
                  build=sixteen),
           Recipe(name="writer", summary="A stage that writes files.", params=WriterParams,
                  build=writer),
           Recipe(name="grows", summary="A stage whose memory follows its input.",
                  params=GrowsParams, build=grows))
