"""A run's emptied stage cgroups are recycled (cgroup v1), and each attempt still reads its own evidence.

Real cgroups in a private parent (``BLUT_CGROUP_PARENT``); skipped where cgroup v1 cannot
be used. A recycled cage is renamed after its next attempt, reset, and read against the
OOM-kill count it had reached: a stage in it reports its own peak and its own OOM kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core.model.sizes import MiB
from tests.support.cgroups import cages, private_parent
from tests.support.procs import alive

pytestmark = pytest.mark.cgroup

#: brings the process to argv[1] bytes of anonymous memory, then exits 0
_FILL = r"""
import sys
buf = bytearray(int(sys.argv[1]))
for i in range(0, len(buf), 4096):
    buf[i] = 1
"""

#: writes argv[1] bytes to the file argv[2] (page cache charged to the stage's cgroup)
_WRITE = r"""
import sys
with open(sys.argv[2], "wb") as fh:
    fh.write(b"x" * int(sys.argv[1]))
"""


@pytest.fixture
def parent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from blut_plugins.cgroup.cage import cgroup_base, cgroup_layout, check_cgroup_base

    base = cgroup_base(1)
    if base is None or check_cgroup_base(cgroup_layout(1), base) is not None:
        pytest.skip(f"cgroup v1 is not usable here: {base and check_cgroup_base(cgroup_layout(1), base)}")
    monkeypatch.setenv("BLUT_CGROUP_POOL", "1")
    with private_parent(base, "pool-test", 1, monkeypatch) as path:
        yield path


def _run(cage, script: str, *args: str) -> int:  # type: ignore[no-untyped-def]
    """Run ``script`` in ``cage`` as the local launcher does; its return code."""
    argv, preexec = cage.wrap([sys.executable, "-c", script, *args])
    proc = subprocess.Popen(argv, preexec_fn=preexec, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cage.attach(proc.pid)
    rc = proc.wait(timeout=60)
    cage.kill()
    _settled(cage.cgroup)
    return rc


def _settled(cgroup: str | None, within: float = 2.0) -> None:
    """Wait (up to ``within`` s) until what an exited process leaves charged to ``cgroup``
    besides page cache — its task and page-table memory, which the kernel frees by RCU
    some milliseconds after the exit (~0.6 MB here, ~0.1 MB after 50 ms) — is down to what
    a cage may keep and still be recycled (``MAX_LEFT``). Recycling right after the exit
    would otherwise find the cage too charged and remove it, depending on timing."""
    from blut_plugins.cgroup.pool import MAX_LEFT

    if cgroup is None:
        return
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            usage = int(Path(cgroup, "memory.usage_in_bytes").read_text())
            stat = dict(line.split() for line in Path(cgroup, "memory.stat").read_text().splitlines())
        except (OSError, ValueError):
            return
        if usage - int(stat.get("cache", 0)) <= MAX_LEFT:
            return
        time.sleep(0.01)


def _oom_count(cgroup: str) -> int:
    for line in Path(cgroup, "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def test_a_recycled_cage_reports_the_next_attempts_own_peak(parent: Path) -> None:
    from blut_plugins.cgroup.backend import CgroupContainment

    containment = CgroupContainment(1)
    first = containment.cage("run.big.1", 1024 * MiB)
    assert _run(first, _FILL, str(200 * MiB)) == 0
    big = first.peak_bytes()
    assert big is not None and big >= 200 * MiB
    assert not first.oom_killed()
    assert first.cgroup is not None
    inode = os.stat(first.cgroup).st_ino
    first.recycle()
    assert not os.path.exists(first.cgroup)  # the finished attempt's name is gone at once
    [pooled] = cages(parent)
    assert "-pool-" in pooled

    second = containment.cage("run.small.1", 1024 * MiB)
    assert second.cgroup is not None and ".small.1-" in second.cgroup
    assert os.stat(second.cgroup).st_ino == inode  # the same cgroup, renamed: no mkdir
    assert cages(parent) == [Path(second.cgroup).name]
    assert _run(second, _FILL, str(40 * MiB)) == 0
    small = second.peak_bytes()
    assert small is not None and 40 * MiB <= small < 100 * MiB, small  # not the first's 200 MiB
    second.recycle()
    containment.close()
    assert cages(parent) == []


def test_an_oom_kill_in_a_recycled_cage_is_counted_for_its_attempt_alone(parent: Path) -> None:
    from blut_plugins.cgroup.backend import CgroupContainment

    containment = CgroupContainment(1)
    cap = 96 * MiB
    killed = containment.cage("run.oom.1", cap)
    assert _run(killed, _FILL, str(400 * MiB)) != 0
    assert killed.peak_bytes() is not None
    assert killed.oom_killed()
    killed.recycle()

    fine = containment.cage("run.fine.1", cap)
    assert fine.cgroup is not None
    assert _oom_count(fine.cgroup) >= 1  # the kernel keeps the first attempt's kill...
    assert _run(fine, _FILL, str(20 * MiB)) == 0
    fine.peak_bytes()
    assert not fine.oom_killed()  # ...which is not this attempt's
    fine.recycle()

    again = containment.cage("run.oom.2", cap)
    assert again.cgroup is not None
    before = _oom_count(again.cgroup)
    assert _run(again, _FILL, str(400 * MiB)) != 0
    again.peak_bytes()
    assert again.oom_killed()
    assert _oom_count(again.cgroup) > before
    again.recycle()
    containment.close()
    assert cages(parent) == []


def test_a_recycled_cage_takes_each_attempts_cap(parent: Path) -> None:
    from blut_plugins.cgroup.backend import CgroupContainment

    def limits(cgroup: str | None) -> tuple[int, int | None]:
        assert cgroup is not None
        memsw = Path(cgroup, "memory.memsw.limit_in_bytes")
        return (int(Path(cgroup, "memory.limit_in_bytes").read_text()),
                int(memsw.read_text()) if memsw.exists() else None)

    containment = CgroupContainment(1)
    for cap in (256 * MiB, 128 * MiB, 512 * MiB):  # falls, then rises past the old swap limit
        cage = containment.cage("run.cap.1", cap)
        limit, swap = limits(cage.cgroup)
        assert limit == cap and swap in (cap, None)
        assert _run(cage, _FILL, str(16 * MiB)) == 0
        cage.recycle()
    unlimited = containment.cage("run.cap.2", None)
    assert limits(unlimited.cgroup)[0] > 1 << 60
    unlimited.recycle()
    containment.close()
    assert cages(parent) == []


def test_a_cage_left_busy_or_full_of_page_cache_is_not_recycled(parent: Path, tmp_path: Path) -> None:
    from blut_plugins.cgroup.backend import CgroupContainment

    containment = CgroupContainment(1)
    busy = containment.cage("run.busy.1", 256 * MiB)
    argv, preexec = busy.wrap(["sleep", "30"])
    sleeper = subprocess.Popen(argv, preexec_fn=preexec, start_new_session=True)
    busy.attach(sleeper.pid)
    assert busy.cgroup is not None
    procs = Path(busy.cgroup, "cgroup.procs")
    deadline = time.monotonic() + 10
    while not procs.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.01)
    busy.recycle()  # what is left in it is killed first
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    [pooled] = cages(parent)
    assert "-pool-" in pooled

    cached = containment.cage("run.cached.1", 1024 * MiB)
    assert _run(cached, _WRITE, str(64 * MiB), str(tmp_path / "out.bin")) == 0
    cached.recycle()  # its cache would count against the next stage: removed, not kept
    assert cages(parent) == []
    containment.close()


#: joins the cage named by argv[1], touches 8 MiB, goes back to argv[2] (as a reused
#: fork-server worker does), says so and stays: its pages stay charged to the cage
_WORKER = r"""
import sys, time
open(sys.argv[1], "w").write(str(__import__("os").getpid()))
buf = bytearray(8 << 20)
for i in range(0, len(buf), 4096):
    buf[i] = 1
open(sys.argv[2], "w").write(str(__import__("os").getpid()))
print("home", flush=True)
time.sleep(60)
"""


def test_a_cage_still_charged_for_a_reused_workers_memory_is_not_recycled(parent: Path) -> None:
    from blut_plugins.cgroup.backend import CgroupContainment

    containment = CgroupContainment(1)
    cage = containment.cage("run.worker.1", 256 * MiB)
    spec = cage.join_spec()
    assert spec is not None and spec.get("home_procs")
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, spec["cgroup_procs"], spec["home_procs"]],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "home"
        cage.attach(worker.pid)
        cage.kill()  # empty: the worker left it, its 8 MiB did not
        assert cage.peak_bytes() is not None
        cage.recycle()  # the next stage's peak and cap would count the worker's memory
        assert cages(parent) == []
        assert alive(worker.pid)
    finally:
        worker.kill()
        worker.wait()
    containment.close()


def test_a_killed_drivers_pool_is_swept(parent: Path) -> None:
    maker = subprocess.run([sys.executable, "-c", """
import os
from blut_plugins.cgroup.backend import CgroupContainment
c = CgroupContainment(1)
c.cage("run.a.1", 64 << 20).recycle()
os.kill(os.getpid(), 9)
"""], env=os.environ, capture_output=True, text=True, timeout=60)
    assert maker.returncode == -signal.SIGKILL, maker.stderr
    [pooled] = cages(parent)
    assert "-pool-" in pooled
    from blut_plugins.cgroup.cage import sweep_stale

    assert sweep_stale(str(parent)) == [str(parent / pooled)]
    assert cages(parent) == []


def test_pooling_can_be_turned_off(parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from blut_plugins.cgroup.backend import CgroupContainment

    monkeypatch.setenv("BLUT_CGROUP_POOL", "0")
    containment = CgroupContainment(1)
    containment.cage("run.a.1", 64 * MiB).recycle()
    assert cages(parent) == []
