"""The memory policy on a made-up machine: a policy whose probe reports a fixed box, stages of
a fixed footprint, and stand-ins for the attempts the executor would hand it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from blut_core import App, BrokerConfig, CalibrationStore, Footprint, Ledger, MemoryPolicy, Probe, Stage
from blut_core.broker.resolve import Estimator
from tests.broker import stages_mem


@attrs.define
class FakeHandle:
    pid: int | None = None
    cgroup: str | None = None


@attrs.define
class FakeAttempt:
    stage: Stage
    cap: int | None
    handle: FakeHandle = attrs.field(factory=FakeHandle)


def made_up_policy(app: App, *, ledger: Ledger, box: int = 0, available: int | None = None,
                   store: CalibrationStore | None = None, recipe: str = "memtest:x",
                   max_parallel: int | None = None, probe_fn: Callable[[], Probe] | None = None,
                   **cfg: Any) -> MemoryPolicy:
    """A policy for ``recipe`` on a box of ``box`` bytes with ``available`` of them free (all of
    them unless said), or as ``probe_fn`` says; ``cfg`` are BrokerConfig's fields."""
    config = BrokerConfig(**cfg)
    if probe_fn is None:
        snap = Probe(mem_total=box, mem_available=box if available is None else available)
        probe_fn = lambda: snap  # noqa: E731
    estimator = Estimator(app.registry, recipe, CalibrationStore(None) if store is None else store, config)
    return MemoryPolicy(estimator=estimator, ledger=ledger, config=config, probe_fn=probe_fn,
                        max_parallel=max_parallel)


def fixed_stage(name: str, memory: str | int) -> Stage:
    """A call stage that declares ``memory`` (``"3G"`` or bytes)."""
    return Stage.call(name, stages_mem.hog, footprint=Footprint.fixed(memory))
