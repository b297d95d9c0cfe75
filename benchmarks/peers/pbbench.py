"""The peer workloads as blut recipes (cookbook ``pbbench``), each in its plainest form.

  W1/W4  blut run pbbench:fanout -p n=200 --jobs 2   n independent `true` command stages
  W2     blut run pbbench:chain  -p n=50  --jobs 2   n dependent `true` command stages
  W5     blut run pbbench:pycall -p n=200 --jobs 2   n independent no-op Python stages

Stages keep blut's defaults (cached, one attempt, no timeouts) and declare a small fixed
footprint, as the docs ask of every stage. bench_peers puts a dist-info naming this module
on PYTHONPATH (blut_core.testing.installed_distribution), so nothing needs installing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from blut_core import CookbookSpec, Footprint, Plan, Recipe, Stage, hookimpl

#: what a `true` process or a no-op Python stage needs, with room to spare
SMALL = Footprint.fixed("16M")


def noop(ctx: Any) -> None:
    """A Python stage that does nothing."""
    return None


@attrs.frozen(kw_only=True)
class FanoutParams:
    n: int = attrs.field(default=200, validator=attrs.validators.ge(1),
                         metadata={"help": "Independent stages."})


@attrs.frozen(kw_only=True)
class ChainParams:
    n: int = attrs.field(default=50, validator=attrs.validators.ge(1),
                         metadata={"help": "Stages in the chain."})


def fanout(p: FanoutParams) -> Plan:
    return Plan.of(*(Stage.command(f"s{i}", ["true"], footprint=SMALL) for i in range(p.n)))


def chain(p: ChainParams) -> Plan:
    return Plan.of(*(Stage.command(f"s{i}", ["true"], inputs=[f"s{i - 1}"] if i else [],
                                   footprint=SMALL) for i in range(p.n)))


def pycall(p: FanoutParams) -> Plan:
    return Plan.of(*(Stage.call(f"s{i}", noop, footprint=SMALL) for i in range(p.n)))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="pbbench", summary="The peer-benchmark workloads.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="fanout", summary="n independent `true` command stages",
                 params=FanoutParams, build=fanout)
    yield Recipe(name="chain", summary="a chain of n `true` command stages", params=ChainParams,
                 build=chain)
    yield Recipe(name="pycall", summary="n independent no-op Python stages", params=FanoutParams,
                 build=pycall)
