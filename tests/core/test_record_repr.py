"""blut's records share one ``__repr__`` (attrs would compile one per class, a third of what
building a record class costs on every start); its text is the one attrs generates."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from blut_core.model.reprs import record_repr


def _twins() -> tuple[type, type]:
    def make(shared: bool) -> type:
        @attrs.frozen(kw_only=True)
        class Rec:
            a: int
            b: str = "x"
            c: float = math.nan
            d: object = None
            hidden: int = attrs.field(default=3, repr=False)
            shown: int = attrs.field(default=7, repr=lambda v: f"<{v}>")
            late: int = attrs.field(init=False, default=5)
            if shared:
                __repr__ = record_repr

        return Rec

    return make(False), make(True)


@pytest.mark.parametrize("kw", [{"a": 1}, {"a": 2, "b": "q'\"", "d": [1, {"k": (1,)}]},
                                {"a": 3, "d": {"nested": "ok"}}])
def test_the_text_is_attrs_own(kw: dict[str, Any]) -> None:
    generated, shared = _twins()
    assert repr(shared(**kw)) == repr(generated(**kw))
    assert vars(shared)["__repr__"] is record_repr
    assert vars(shared)["__hash__"] is not None and "__eq__" in vars(shared)  # attrs' own still


def test_a_record_inside_itself_is_dots_and_nested_names_are_kept() -> None:
    @attrs.define
    class Loop:
        x: object = None
        __repr__ = record_repr

    @attrs.define
    class AttrsLoop:
        x: object = None

    mine, theirs = Loop(), AttrsLoop()
    mine.x, theirs.x = mine, theirs
    assert repr(mine) == repr(theirs).replace("AttrsLoop(", "Loop(") == "Loop(x=...)"
    assert repr(Loop(x=Loop(x=1))) == "Loop(x=Loop(x=1))"

    class Outer:
        @attrs.frozen
        class Inner:
            v: int
            __repr__ = record_repr

        @attrs.frozen
        class AttrsInner:
            v: int

    assert repr(Outer.Inner(1)) == repr(Outer.AttrsInner(1)).replace("AttrsInner", "Inner") \
        == "Outer.Inner(v=1)"


def test_blut_records_use_it() -> None:
    from blut_core import (
        CookbookSpec,
        Footprint,
        Job,
        JobHandle,
        JobState,
        Knob,
        LauncherSpec,
        Plan,
        Recipe,
        RetryPolicy,
        RunInfo,
        RunSummary,
        Stage,
        StageEstimate,
        StageOutcome,
        Timeouts,
    )
    from blut_core.model import Capacity, NodeCapacity

    for cls in (CookbookSpec, Footprint, Job, JobHandle, JobState, Knob, LauncherSpec, Plan, Recipe,
                RetryPolicy, RunInfo, RunSummary, Stage, StageEstimate, StageOutcome, Timeouts,
                Capacity, NodeCapacity):
        assert vars(cls)["__repr__"] is record_repr, cls
    stage = Stage.command("s", ["true"], footprint=Footprint.fixed("16M"))
    assert repr(stage).startswith("Stage(name='s', target=None, argv=('true',), ")
    assert repr(Plan.of(stage)).startswith("Plan(stages=(Stage(name='s', ")
