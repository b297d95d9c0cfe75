"""A stage a fork-server worker runs is caged by that worker: it makes the stage's cgroup,
writes its cap and joins it before anything of the stage runs; the driver makes none.

Real cgroup v1 cages in a private parent (``BLUT_CGROUP_PARENT``), a real fork server;
skipped where cgroup v1 cannot be used.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blut_core.model.jobs import Job, JobState
from blut_core.model.sizes import MiB
from tests.support.cgroups import cages, private_parent

pytestmark = pytest.mark.cgroup

#: what the stage writes to its out file: its memory cgroup, and that cgroup's limit
_WHERE = ('d=$(sed -n "s/^[0-9]*:memory://p" /proc/self/cgroup); '
          'echo "$d $(cat /sys/fs/cgroup/memory$d/memory.limit_in_bytes)" > out')


@pytest.fixture
def parent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from blut_plugins.cgroup.cage import cgroup_base, cgroup_layout, check_cgroup_base

    base = cgroup_base(1)
    if base is None or check_cgroup_base(cgroup_layout(1), base) is not None:
        pytest.skip(f"cgroup v1 is not usable here: {base and check_cgroup_base(cgroup_layout(1), base)}")
    monkeypatch.delenv("BLUT_CGROUP_POOL", raising=False)
    monkeypatch.delenv("BLUT_FORKSERVER", raising=False)
    monkeypatch.delenv("BLUT_REUSE_WORKERS", raising=False)
    with private_parent(base, "worker-cage-test", 1, monkeypatch) as path:
        yield path


def _job(tmp_path: Path, name: str, script: str, cap: int | None) -> Job:
    adir = tmp_path / name
    return Job(run_id="run", stage=name, attempt=1, argv=("/bin/sh", "-c", script),
               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd=str(adir / "work"),
               stdout=str(adir / "stdout.log"), stderr=str(adir / "stderr.log"), memory_cap=cap,
               label=f"run.{name}.1", dirs=(str(adir / "work"),))


def _launcher() -> Any:
    """A local launcher under cgroup v1 with its fork server up (see :func:`_idle`)."""
    from blut_plugins.cgroup.backend import CgroupContainment
    from blut_plugins.local.launcher import LocalLauncher

    launcher = LocalLauncher(None, CgroupContainment(1))
    launcher.prepare(dict(os.environ), [])
    return _idle(launcher)


def _idle(launcher: Any) -> Any:
    """``launcher`` once its fork server has an idle worker, so that the next command stage
    goes to a worker (as every stage of a run does while one is idle)."""
    forks = launcher._forks
    assert forks is not None, "the fork server did not start for command stages"
    deadline = time.monotonic() + 30
    while not forks.spares and time.monotonic() < deadline:
        forks.drain()
        time.sleep(0.01)
    assert forks.spares, "the fork server announced no idle worker"
    return launcher


def _finish(launcher: Any, handle: Any) -> JobState:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        launcher.wait([handle], 1.0)
        state: JobState = launcher.poll(handle)
        if state.done:
            return state
    raise AssertionError("the stage did not end in 30 s")


def test_a_workers_stage_runs_in_its_own_capped_cgroup_the_driver_never_made(
        parent: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made_here: list[str] = []
    real_mkdir = os.mkdir

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).startswith(str(parent)):
            made_here.append(str(path))
        real_mkdir(path, *args, **kwargs)

    launcher = _launcher()
    try:
        monkeypatch.setattr(os, "mkdir", mkdir)
        handles, states = [], []
        for i in range(3):
            handles.append(_idle(launcher).submit(_job(tmp_path, f"s{i}", _WHERE, (64 + i) * MiB)))
            states.append(_finish(launcher, handles[-1]))
    finally:
        monkeypatch.setattr(os, "mkdir", real_mkdir)
        launcher.close()
    assert [s.returncode for s in states] == [0, 0, 0]
    assert all("." in h.job_id for h in handles), "the stages were not run by fork-server workers"
    seen = [(tmp_path / f"s{i}" / "work" / "out").read_text().split() for i in range(3)]
    for i, (where, limit) in enumerate(seen):
        assert "/sys/fs/cgroup/memory" + where == handles[i].cgroup  # its own, while it ran
        assert int(limit) == (64 + i) * MiB  # capped before it ran
    assert len({where for where, _ in seen}) == 3
    assert made_here == []  # each was made by its worker, not by the driver
    assert cages(parent) == []  # and removed when the stage was reaped


def test_a_stage_whose_cgroup_cannot_be_capped_does_not_run(
        parent: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    not_cgroups = tmp_path / "not-a-cgroup"  # mkdir works there; no memory.limit_in_bytes
    not_cgroups.mkdir()
    launcher = _launcher()
    try:
        monkeypatch.setenv("BLUT_CGROUP_PARENT", str(not_cgroups))
        handle = launcher.submit(_job(tmp_path, "uncappable", "echo ran > out", 64 * MiB))
        state = _finish(launcher, handle)
    finally:
        launcher.close()
    assert "." in handle.job_id, "the stage was not run by a fork-server worker"
    assert state.returncode == 1
    assert not (tmp_path / "uncappable" / "work" / "out").exists()  # it never ran uncapped
    err = capfd.readouterr().err
    assert "cannot make the stage's cgroup" in err and "memory.limit_in_bytes" in err
    assert "Traceback" not in err
    assert list(not_cgroups.iterdir()) == []  # what the worker made is removed all the same


def test_the_fork_server_has_openssl_before_any_stage(tmp_path: Path) -> None:
    """A Python stage's worker has OpenSSL (hashlib) loaded before the stage joins its cage:
    loaded by the stage, its pages would be charged to the stage (the signal cookbook's
    stages are declared within a few hundred KiB of what they need)."""
    from blut_plugins.local.forkclient import ForkClient

    client = ForkClient(dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not client.spares and time.monotonic() < deadline:
            client.drain()
            time.sleep(0.01)
        assert client.spares, "the fork server announced no idle worker"
        maps = Path(f"/proc/{client.spares[0]}/maps").read_text()
    finally:
        client.close()
    assert "libcrypto" in maps


def _fork_servers() -> list[int]:
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "blut_plugins.local.forkserver" in " ".join(p.cmdline()):
                found.append(p.pid)
        except psutil.Error:
            continue
    return found


def test_a_run_of_few_command_stages_starts_them_without_a_fork_server(
        parent: Path, tmp_path: Path) -> None:
    from blut_core.model.stage import Stage
    from blut_core.process.spec import prepare_launcher
    from blut_plugins.cgroup.backend import CgroupContainment
    from blut_plugins.local.launcher import LocalLauncher

    def commands(n: int) -> list[Stage]:
        return [Stage.command(f"s{i}", ["true"]) for i in range(n)]

    few = LocalLauncher(None, CgroupContainment(1))
    try:
        prepare_launcher(few, commands(3))
        state = _finish(few, few.submit(_job(tmp_path, "a", _WHERE, 64 * MiB)))
        assert state.returncode == 0
        where, limit = (tmp_path / "a" / "work" / "out").read_text().split()
        assert parent.name in where  # still in a cage of its own, under the cap
        assert int(limit) == 64 * MiB
        assert _fork_servers() == []  # a Python process's start-up these few never win back
    finally:
        few.close()
    many = LocalLauncher(None, CgroupContainment(1))
    try:
        prepare_launcher(many, commands(LocalLauncher.FORK_SERVER_MIN_COMMANDS))
        assert len(_fork_servers()) == 1
    finally:
        many.close()
    python = LocalLauncher(None, CgroupContainment(1))
    try:  # a Python stage needs one, however few the stages
        prepare_launcher(python, [Stage.call("p", "tests.support.stages:emit")])
        assert len(_fork_servers()) == 1
    finally:
        python.close()
