"""Stage functions for the broker's tests (module level, importable by stage processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blut_core import StageContext

CHUNK = 16 << 20


def hog(ctx: StageContext) -> None:
    """Touch ``params["mb"]`` MiB (really written, so it is resident), then succeed."""
    held = [b"\x01" * CHUNK for _ in range(int(ctx.params["mb"]) * (1 << 20) // CHUNK)]
    (ctx.out_dir / "held.txt").write_text(str(len(held) * 16), encoding="utf-8")


def scripted(ctx: StageContext) -> None:
    """Attempt N does the Nth word of ``params["script"]``: ``oom`` (touch 4x the cap's
    default, so a 64 MiB declaration is killed), ``error`` (raise) or ``ok``."""
    words = str(ctx.params["script"]).split(",")
    what = words[min(ctx.attempt, len(words)) - 1]
    if what == "oom":
        hog_mb = 512
        held = [b"\x01" * CHUNK for _ in range(hog_mb * (1 << 20) // CHUNK)]
        raise AssertionError(f"touched {len(held) * 16} MiB and was not killed")
    if what == "error":
        raise RuntimeError(f"attempt {ctx.attempt} fails as scripted")
    (ctx.out_dir / "attempt.txt").write_text(str(ctx.attempt), encoding="utf-8")


def knobbed(ctx: StageContext) -> None:
    """Record the knobs the stage was admitted with."""
    import json

    (ctx.out_dir / "knobs.json").write_text(json.dumps(ctx.knobs), encoding="utf-8")


_CHILD = (
    "import os, sys, time\n"
    "held = [b'\\x01' * (16 << 20) for _ in range(int(sys.argv[1]) // 16)]\n"
    "open(sys.argv[2], 'a').write(f'{os.getpid()}\\n')\n"
    "time.sleep(120)\n"
)


def forker(ctx: StageContext) -> None:
    """Start detached children (own sessions) that each hold ``child_mb`` MiB, then wait."""
    pids = Path(ctx.params["pid_file"])
    for _ in range(int(ctx.params["children"])):
        subprocess.Popen([sys.executable, "-c", _CHILD, str(ctx.params["child_mb"]), str(pids)],
                         start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + float(ctx.params.get("linger", 0.0))
    while time.monotonic() < deadline:
        time.sleep(0.05)
    (ctx.out_dir / "started.txt").write_text(str(os.getpid()), encoding="utf-8")


def probe(ctx: StageContext) -> None:
    """Record what this stage's process looks like, then leave marks a later stage must not see."""
    import json
    import threading

    seen = {"pid": os.getpid(), "leak": os.environ.get("BLUT_TEST_LEAK"), "cwd": os.getcwd(),
            "work": str(ctx.work_dir)}
    (ctx.out_dir / "seen.json").write_text(json.dumps(seen), encoding="utf-8")
    print(f"stdout of {ctx.stage}", flush=True)
    os.environ["BLUT_TEST_LEAK"] = ctx.stage
    os.chdir("/")
    held = [b"\x01" * CHUNK for _ in range(int(ctx.params.get("mb", 0)) * (1 << 20) // CHUNK)]
    del held
    if ctx.params.get("thread"):
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()


def fork_returns(ctx: StageContext) -> None:
    """Fork a child that returns from the stage function too (as a careless stage might)."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        (ctx.out_dir / "parent.txt").write_text(str(os.getpid()), encoding="utf-8")


def logs(ctx: StageContext) -> None:
    """Log through the root logger into a file of this stage's output, as scripts often do."""
    import logging

    logging.basicConfig(filename=str(ctx.out_dir / "stage.log"), level=logging.INFO)
    logging.info("from %s", ctx.stage)


def hold(ctx: StageContext) -> None:
    """Touch ``params["mb"]`` MiB and keep it ``params["hold"]`` seconds (a stage that
    declares nothing, as most are first written)."""
    held = [b"\x01" * CHUNK for _ in range(int(ctx.params["mb"]) * (1 << 20) // CHUNK)]
    time.sleep(float(ctx.params.get("hold", 0.0)))
    (ctx.out_dir / "held.txt").write_text(str(len(held) * 16), encoding="utf-8")


def write_files(ctx: StageContext) -> None:
    """Write ``params["mb"]`` MiB of files into scratch, 1 MiB at a time: page cache, not
    memory the stage holds."""
    block = os.urandom(1 << 20)
    per_file = 64
    for i in range(0, int(ctx.params["mb"]), per_file):
        with open(ctx.work_dir / f"part-{i // per_file}.bin", "wb") as fh:
            for _ in range(min(per_file, int(ctx.params["mb"]) - i)):
                fh.write(block)
    (ctx.out_dir / "written.txt").write_text(str(ctx.params["mb"]), encoding="utf-8")


def make_input(ctx: StageContext) -> None:
    """Write an output of ``params["mb"]`` MiB for a downstream stage to read."""
    block = b"\x02" * (1 << 20)
    with open(ctx.out_dir / "data.bin", "wb") as fh:
        for _ in range(int(ctx.params["mb"])):
            fh.write(block)


def read_input(ctx: StageContext) -> None:
    """Hold the whole of input ``make`` in memory: a stage whose memory grows with its input."""
    data = (ctx.inputs["make"] / "data.bin").read_bytes()
    copy = bytearray(data)  # touched: resident
    (ctx.out_dir / "size.txt").write_text(str(len(copy)), encoding="utf-8")
