"""Stage functions for tests (module level, importable by stage processes)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blut_core import StageContext


def _mark(ctx: StageContext) -> None:
    """Append this stage's name to $BLUT_TEST_JOURNAL, so tests can see what really ran."""
    journal = os.environ.get("BLUT_TEST_JOURNAL")
    if journal:
        with open(journal, "a", encoding="utf-8") as fh:
            fh.write(f"{ctx.stage}\n")


def noop(ctx: StageContext) -> None:
    return None


def emit(ctx: StageContext) -> None:
    """Write params and the content of every input into out/data.json."""
    _mark(ctx)
    inputs = {name: sorted(p.name for p in path.iterdir()) for name, path in ctx.inputs.items()}
    (ctx.out_dir / "data.json").write_text(json.dumps({"stage": ctx.stage, "params": ctx.params,
                                                       "inputs": inputs}), encoding="utf-8")
    ctx.log(step=1, value=1.0)


def fail_after_output(ctx: StageContext) -> None:
    """Write a partial output, then fail: the output must never be promoted."""
    _mark(ctx)
    (ctx.out_dir / "partial.txt").write_text("half", encoding="utf-8")
    raise RuntimeError("boom after writing output")


def deterministic_failure(ctx: StageContext) -> None:
    _mark(ctx)
    ctx.fail("bad input: nothing to do")


def flaky(ctx: StageContext) -> None:
    """Fails on the first attempt, succeeds after."""
    _mark(ctx)
    if ctx.attempt == 1:
        raise RuntimeError("transient failure")
    (ctx.out_dir / "ok.txt").write_text(str(ctx.attempt), encoding="utf-8")


def sleeper(ctx: StageContext) -> None:
    _mark(ctx)
    time.sleep(float(ctx.params.get("seconds", 1.0)))
    (ctx.out_dir / "slept.txt").write_text("done", encoding="utf-8")


def read_input(ctx: StageContext) -> None:
    _mark(ctx)
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(Path(ctx.input("a")).iterdir()))
    (ctx.out_dir / "copy.txt").write_text(text, encoding="utf-8")
