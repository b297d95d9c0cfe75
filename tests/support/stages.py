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


def stops_on_term(ctx: StageContext) -> None:
    """Sleeps; the default SIGTERM action ends it."""
    _mark(ctx)
    time.sleep(60)


def ignores_term(ctx: StageContext) -> None:
    """Ignores SIGTERM, so only the SIGKILL after the grace period stops it."""
    import signal

    _mark(ctx)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def beats_then_hangs(ctx: StageContext) -> None:
    _mark(ctx)
    for _ in range(3):
        ctx.heartbeat()
        time.sleep(0.05)
    time.sleep(60)


def reports_nan(ctx: StageContext) -> None:
    _mark(ctx)
    for step, loss in enumerate([1.0, 0.5, float(ctx.params.get("bad", "nan"))]):
        ctx.log(step=step, loss=loss)
        time.sleep(0.05)
    time.sleep(60)  # the driver must kill it: it never finishes on its own


def forks_and_sleeps(ctx: StageContext) -> None:
    """Starts a grandchild in its own right, then sleeps; writes both pids to a file."""
    import subprocess

    _mark(ctx)
    child = subprocess.Popen(["sleep", "300"])
    pids = os.environ.get("BLUT_TEST_PIDS")
    if pids:
        with open(pids, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(300)


def counts_with_checkpoints(ctx: StageContext) -> None:
    """Ten steps of 0.3 s each, checkpointing after every step; resumes where it stopped."""
    _mark(ctx)
    state = ctx.restore() or {"step": 0}
    journal = os.environ.get("BLUT_TEST_JOURNAL")
    for step in range(int(state["step"]), 10):
        if journal:
            with open(journal, "a", encoding="utf-8") as fh:
                fh.write(f"step{step}\n")
        time.sleep(0.3)
        ctx.heartbeat(step=step)
        ctx.checkpoint({"step": step + 1})
    (ctx.out_dir / "steps.txt").write_text("10", encoding="utf-8")


def holds_memory(ctx: StageContext) -> None:
    """Touch ``mb`` MiB of real memory and hold it for ``seconds``."""
    _mark(ctx)
    block = bytearray(int(ctx.params.get("mb", 64)) << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    ctx.heartbeat()
    time.sleep(float(ctx.params.get("seconds", 1.0)))
    (ctx.out_dir / "held.txt").write_text(str(len(block)), encoding="utf-8")
