"""No stage cgroup outlives its attempt: not after ``kill -9`` of the driver, not after resume.

Real cgroups (skipped where none is usable): each test gives its blut processes a private
parent cgroup (``BLUT_CGROUP_PARENT``) and counts the ``blut-*`` cages left in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core import App
from blut_core.broker.select import select_containment
from blut_core.store.rundir import read_events
from tests.support.cgroups import cages, private_parent
from tests.support.cli import blut_argv, blut_env, run_blut, start_blut
from tests.support.procs import alive, wait_for

pytestmark = pytest.mark.cgroup


@pytest.fixture
def version(app: App) -> int:
    sel = select_containment(app.registry, os.environ)
    if sel.name not in ("cgroup-v1", "cgroup-v2"):
        reasons = "; ".join(f"{b.name}: {b.reason}" for b in sel.backends if b.reason)
        pytest.skip(f"no cgroup containment backend is usable here ({reasons})")
    return 1 if sel.name == "cgroup-v1" else 2


@pytest.fixture
def parent(version: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private parent cgroup for this test's cages (exported for blut subprocesses)."""
    from blut_plugins.cgroup.cage import cgroup_base

    base = cgroup_base(version)
    assert base is not None
    with private_parent(base, "cleanup-test", version, monkeypatch) as path:
        yield path


@pytest.mark.parametrize("forkserver", ["1", "0"], ids=["workers", "subprocesses"])
def test_kill_9_then_resume_leaves_no_cgroup(parent: Path, tmp_path: Path, forkserver: str) -> None:
    """The train stage is running in its cage when the driver is killed: a fork-server
    worker (the server kills it and removes its cage) or a process of its own, which lives on
    until ``blut resume`` kills it and removes its cage before running the stage again."""
    home, journal = tmp_path / "h", tmp_path / "journal"
    env = {"BLUT_FORKSERVER": forkserver, "BLUT_TEST_JOURNAL": str(journal)}
    proc = start_blut("run", "testbook:resumable", "--no-progress", home=home, tmp=tmp_path, **env)
    resume = [*blut_argv(), "resume", "--no-progress"]
    wait_for(lambda: journal.exists() and "step2" in journal.read_text(), timeout=60)
    assert any(".train." in name for name in cages(parent))  # its stage is caged, running
    proc.kill()
    proc.wait(timeout=10)
    [run_dir] = [p for p in (home / "runs").iterdir() if not p.name.startswith(".")]
    started = [e for e in read_events(run_dir / "status.jsonl")
               if e["event"] == "stage_started" and e["stage"] == "train"]
    orphan = int(started[0]["pid"])
    r = subprocess.run([*resume, run_dir.name], capture_output=True, text=True,
                       env=blut_env(home, tmp_path, **env), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not alive(orphan)
    assert cages(parent) == []
    listed = json.loads(run_blut("runs", "list", "--json", home=home, tmp=tmp_path).stdout)
    assert listed[0]["state"] == "ok"


def _dead_process() -> tuple[int, int]:
    """(pid, start ticks) of a process that has exited and been reaped."""
    from blut_core.broker import process_start

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    start = process_start(proc.pid)
    proc.kill()
    proc.wait()
    assert start is not None
    return proc.pid, start


def test_the_sweep_removes_dead_makers_empty_cages_at_once_and_nothing_else(parent: Path) -> None:
    from blut_core.broker import process_start
    from blut_plugins.cgroup.cage import cage_name, sweep_stale

    pid, start = _dead_process()
    dead_empty = parent / f"blut-{pid}.{start}-run.stage.1-aaaaaa"
    dead_busy = parent / f"blut-{pid}.{start}-run.stage.2-bbbbbb"
    reused_pid = parent / f"blut-{os.getpid()}.{(process_start(os.getpid()) or 0) + 1}-run.s.1-cccccc"
    mine = parent / cage_name("run.stage.3")
    unnamed = parent / "blut-an-older-blut-cage"
    for path in (dead_empty, dead_busy, reused_pid, mine, unnamed):
        path.mkdir()
    assert mine.name.startswith(f"blut-{os.getpid()}.")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (dead_busy / "cgroup.procs").write_text(str(sleeper.pid))
        removed = sorted(Path(p).name for p in sweep_stale(str(parent)))
        assert removed == sorted([dead_empty.name, reused_pid.name])  # both makers are gone
        assert mine.exists() and dead_busy.exists() and unnamed.exists()
        assert str(unnamed) in sweep_stale(str(parent), older_than=0)  # no maker: by age
    finally:
        sleeper.kill()
        sleeper.wait()
    wait_for(lambda: not (dead_busy / "cgroup.procs").read_text().split(), timeout=5)
    assert sweep_stale(str(parent)) == [str(dead_busy)]
    mine.rmdir()
