"""A reused fork-server worker puts back what a stage changed in its process before the next one."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STAGE = '''
import json, os, signal, stat

def mess(ctx):
    """Record what this process looks like, then change it as a careless stage might."""
    null = os.stat(os.devnull)
    fd0 = os.fstat(0)
    seen = {"pid": os.getpid(), "home": os.environ.get("HOME"), "path": os.environ.get("PATH"),
            "mine": os.environ.get("RESET_MINE"), "leak": os.environ.get("RESET_LEAK"),
            "stdin_null": stat.S_ISCHR(fd0.st_mode) and fd0.st_rdev == null.st_rdev,
            "term": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            "int": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "cwd": os.getcwd(), "out": os.path.isdir(ctx.out_dir)}
    (ctx.out_dir / "seen.json").write_text(json.dumps(seen))
    os.environ.pop("HOME", None)
    os.environ["PATH"] = "/nowhere"
    os.environ["RESET_LEAK"] = ctx.stage
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    r, w = os.pipe()
    os.dup2(r, 0)
'''


def test_a_reused_worker_gives_the_next_stage_the_servers_environment_stdin_and_signals(
        tmp_path: Path) -> None:
    from blut_core.broker.cgroups import own_dir
    from blut_plugins.local.forkclient import ForkClient

    home = own_dir(1) or own_dir(2)
    if home is None:
        pytest.skip("workers are reused only where they can go back to a cgroup of their own")
    (tmp_path / "reset_stage.py").write_text(STAGE)
    env = {**os.environ, "HOME": "/home-of-the-server", "PATH": os.environ.get("PATH", "/usr/bin"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), *sys.path])}
    client = ForkClient(env, ["reset_stage"])
    try:
        pids = []
        for name in ("first", "second"):
            adir = tmp_path / name
            adir.mkdir()
            ctx: dict[str, object] = {
                "run_id": "r", "stage": name, "attempt": 1, "target": "reset_stage:mess",
                "params": {}, "inputs": {}, "out_dir": str(adir / "out.tmp"),
                "work_dir": str(adir / "work"), "events": str(adir / "events.jsonl"),
                "checkpoint_dir": str(adir / "checkpoint"), "knobs": {}}
            (adir / "context.json").write_text(json.dumps(ctx))
            pid, request = client.spawn(
                cwd=str(adir / "work"), env={**env, "RESET_MINE": name},
                stdout=str(adir / "stdout.log"), stderr=str(adir / "stderr.log"),
                join={"home_procs": os.path.join(home, "cgroup.procs")},
                context=str(adir / "context.json"), preload="reset_stage", reuse=True,
                dirs=(str(adir / "out.tmp"), str(adir / "work")))
            assert client.wait_exit(request, 30) == 0, (adir / "stderr.log").read_text()
            assert client.exits[request][1]  # reused
            pids.append(pid)
            client.drain()
        assert pids[0] == pids[1]  # the same worker ran both
        seen = json.loads((tmp_path / "second" / "out.tmp" / "seen.json").read_text())
        assert seen == {"pid": pids[1], "home": "/home-of-the-server", "path": env["PATH"],
                        "mine": "second", "leak": None, "stdin_null": True, "term": True,
                        "int": True, "cwd": str(tmp_path / "second" / "work"), "out": True}
    finally:
        client.close()
