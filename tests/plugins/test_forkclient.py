"""The fork server's driver end: how the server is started (a fork of the driver, or a new
interpreter), and closing a server that ran nothing does not wait for its start-up."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.procs import alive

if TYPE_CHECKING:
    from blut_plugins.local.forkclient import ForkClient

ROOT = Path(__file__).resolve().parents[2]


def test_closing_an_unused_server_does_not_wait_for_its_imports(tmp_path: Path) -> None:
    from blut_plugins.local.forkclient import ForkClient

    (tmp_path / "slow_stage_module.py").write_text("import time\ntime.sleep(30)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), *sys.path])}
    client = ForkClient(env, ["slow_stage_module"])  # the server imports it before serving
    time.sleep(0.2)
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 4  # neither its 30 s of start-up nor a 5 s grace
    assert client.proc.poll() is not None  # and the server is gone, not left behind


def test_a_used_server_ends_its_workers_when_closed(tmp_path: Path) -> None:
    from blut_plugins.local.forkclient import ForkClient

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    client = ForkClient(env)
    pid, request = client.spawn(cwd=str(tmp_path), env=env, stdout=str(tmp_path / "out"),
                                stderr=str(tmp_path / "err"), join={}, argv=["true"])
    assert client.wait_exit(request, 30) == 0
    client.drain()
    spares = list(client.spares)
    client.close()
    assert client.proc.poll() is not None
    deadline = time.monotonic() + 10
    while any(alive(p) for p in [pid, *spares]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(alive(p) for p in [pid, *spares])




def _server_cmdline(pid: int) -> list[str]:
    """The server's command line, once it has one (it reads empty while the exec runs)."""
    deadline = time.monotonic() + 10
    while not (text := Path(f"/proc/{pid}/cmdline").read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return text.decode().split("\0")


_FORKED = """
import os, sys, time
from pathlib import Path
from blut_plugins.local.forkclient import ForkClient
tmp = Path(sys.argv[1])
mark = tmp / "imported"
(tmp / "marking_stage_module.py").write_text(f"open({str(mark)!r}, 'w').write('yes')\\n")
env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), *sys.path])}
client = ForkClient(env, ["marking_stage_module"])
try:
    cmdline = lambda pid: Path(f"/proc/{pid}/cmdline").read_bytes()
    print("fork" if cmdline(client.proc.pid) == cmdline(os.getpid()) else "new interpreter")
    deadline = time.monotonic() + 10
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    print(mark.read_text() if mark.exists() else "not imported")
    print("here" if "marking_stage_module" in sys.modules else "not here")
finally:
    client.close()
"""


def test_the_server_is_a_fork_of_the_driver_that_imports_from_its_pythonpath(
        tmp_path: Path) -> None:
    """No other thread runs: the server is a fork of the driver (no new interpreter to wait
    for), and it imports the stage modules found on the PYTHONPATH it was given. (A driver
    of its own: this test process may have threads other tests left.)"""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run([sys.executable, "-c", _FORKED, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.stdout.split("\n")[:3] == ["fork", "yes", "not here"], done.stderr


def test_with_another_thread_running_the_server_is_a_new_interpreter(tmp_path: Path) -> None:
    """A fork of a process with threads may inherit a lock one of them held: then the
    server starts as ``python -m blut_plugins.local.forkserver``, and works the same."""
    import threading

    from blut_plugins.local.forkclient import ForkClient

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    try:
        client = ForkClient(env)
    finally:
        stop.set()
        thread.join()
    try:
        assert "blut_plugins.local.forkserver" in _server_cmdline(client.proc.pid)
        _, request = client.spawn(cwd=str(tmp_path), env=env, stdout=str(tmp_path / "out"),
                                  stderr=str(tmp_path / "err"), join={}, argv=["true"])
        assert client.wait_exit(request, 30) == 0
    finally:
        client.close()


_SIGNALLED = """
import os, signal, sys, time
from pathlib import Path
from blut_plugins.local.forkclient import ForkClient
ran = Path(sys.argv[1]) / "handler-ran"
signal.signal(signal.SIGTERM, lambda *_: ran.write_text(str(os.getpid())))
client = ForkClient(dict(os.environ))
try:
    cmdline = lambda pid: Path(f"/proc/{pid}/cmdline").read_bytes()
    print("fork" if cmdline(client.proc.pid) == cmdline(os.getpid()) else "new interpreter")
    deadline = time.monotonic() + 10
    while not client.spares and time.monotonic() < deadline:  # it is serving
        client._read(0.05)
    os.kill(client.proc.pid, signal.SIGTERM)
    print(client.proc.wait(timeout=10))
    print("handler ran" if ran.exists() else "handler did not run")
finally:
    client.close()
"""


def test_a_forked_server_does_not_run_the_drivers_signal_handlers(tmp_path: Path) -> None:
    """The driver's SIGTERM handler (it cancels the run) is not the server's: a SIGTERM ends
    the server as it would a new interpreter's, and the driver's handler never runs there."""
    import signal
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run([sys.executable, "-c", _SIGNALLED, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.split("\n")[:3] == ["fork", str(-signal.SIGTERM), "handler did not run"], \
        done.stderr


def test_blut_forkserver_fork_0_starts_the_server_as_a_new_interpreter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from blut_plugins.local.launcher import LocalLauncher

    monkeypatch.setenv("BLUT_FORKSERVER_FORK", "0")
    launcher = LocalLauncher()
    launcher.prepare({**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
                     ["json"])  # a run with a Python stage starts its server here
    try:
        assert launcher._forks is not None
        assert "blut_plugins.local.forkserver" in _server_cmdline(launcher._forks.proc.pid)
    finally:
        launcher.close()


def test_a_driver_holding_much_memory_starts_the_server_as_a_new_interpreter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork of a big driver would keep, in the server, a copy of every page the driver
    later frees or changes: above FORK_MAX_RESIDENT the server is a new interpreter."""
    from blut_plugins.local import forkclient

    monkeypatch.setattr(forkclient, "FORK_MAX_RESIDENT", 1 << 20)  # this process holds more
    client = forkclient.ForkClient({**os.environ,
                                    "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])})
    try:
        assert "blut_plugins.local.forkserver" in _server_cmdline(client.proc.pid)
    finally:
        client.close()


def _with_spares(client: ForkClient, n: int) -> list[int]:
    deadline = time.monotonic() + 30
    while len(client.spares) < n and time.monotonic() < deadline:
        client.drain()
        time.sleep(0.01)
    assert len(client.spares) >= n, "the fork server announced too few idle workers"
    return list(client.spares)


def test_a_worker_killed_mid_stage_reports_the_signal_and_a_dead_idle_one_is_passed_over(
        tmp_path: Path) -> None:
    """The driver talks to workers directly: a worker killed while its stage runs never
    says how it ended, so the server's word is its code (-9, not a hang); an idle worker
    killed from outside is dropped, and the next stage goes to one that lives."""
    import signal

    from blut_plugins.local.forkclient import ForkClient

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    client = ForkClient(env)
    try:
        idle = _with_spares(client, 2)
        os.kill(idle[-1], signal.SIGKILL)  # the one a spawn would take first
        deadline = time.monotonic() + 10
        while alive(idle[-1]) and time.monotonic() < deadline:
            time.sleep(0.01)
        pid, request = client.spawn(cwd=str(tmp_path), env=env, stdout=str(tmp_path / "out"),
                                    stderr=str(tmp_path / "err"), join={}, reuse=True,
                                    argv=["sleep", "30"])
        assert pid != idle[-1]
        time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
        assert client.wait_exit(request, 10) == -signal.SIGKILL
        # a command that ends by a signal while its worker lives: the worker's own word
        _, second = client.spawn(cwd=str(tmp_path), env=env, stdout=str(tmp_path / "out2"),
                                    stderr=str(tmp_path / "err2"), join={}, reuse=True,
                                    argv=["sh", "-c", "kill -TERM $$"])
        assert client.wait_exit(second, 10) == -signal.SIGTERM
        assert client.exits[second] == (-signal.SIGTERM, False)  # not reused after a failure
        _with_spares(client, 2)  # and the server forked workers in the place of the dead
    finally:
        client.close()


def test_a_worker_with_no_cgroup_to_leave_is_not_kept_after_its_stage(tmp_path: Path) -> None:
    """Reuse needs a cgroup the worker can leave (``home_procs``): else what the stage left
    behind could not be killed apart from the worker, so the worker exits."""
    from blut_plugins.local.forkclient import ForkClient

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    client = ForkClient(env)
    try:
        _with_spares(client, 2)
        pid, request = client.spawn(cwd=str(tmp_path), env=env, stdout=str(tmp_path / "o"),
                                    stderr=str(tmp_path / "e"), join={}, reuse=True,
                                    argv=["true"])
        assert client.wait_exit(request, 10) == 0
        assert client.exits[request] == (0, False)
        assert pid not in client.spares
    finally:
        client.close()


def test_a_command_is_found_on_path_as_posix_spawnp_finds_it(tmp_path: Path) -> None:
    """A worker looks a command up in PATH itself (an ``access`` per folder, not a failed
    ``execve``) and must find what ``posix_spawnp`` would: not a file it cannot execute, nor
    a folder of that name, but the first executable file after them; a name found nowhere
    still fails as before (127, "cannot start")."""
    from blut_plugins.local.forkclient import ForkClient

    plain, folder, tool = tmp_path / "plain", tmp_path / "folder", tmp_path / "tool"
    for d in (plain, folder, tool):
        d.mkdir()
    (plain / "blut-probe").write_text("#!/bin/sh\necho plain\n")  # not executable
    (folder / "blut-probe").mkdir()
    script = tool / "blut-probe"
    script.write_text("#!/bin/sh\necho found \"$1\"\n")
    script.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    stage_env = {"PATH": os.pathsep.join([str(plain), str(folder), str(tool),
                                          os.environ.get("PATH", os.defpath)])}
    client = ForkClient(env)
    try:
        _with_spares(client, 1)
        out, err = tmp_path / "out", tmp_path / "err"
        _, request = client.spawn(cwd=str(tmp_path), env=stage_env, stdout=str(out),
                                  stderr=str(err), join={}, reuse=False,
                                  argv=["blut-probe", "it"])
        assert client.wait_exit(request, 10) == 0, err.read_text()
        assert out.read_text() == "found it\n"
        _, missing = client.spawn(cwd=str(tmp_path), env={"PATH": str(plain)},
                                  stdout=str(tmp_path / "o2"), stderr=str(err), join={},
                                  reuse=False, argv=["blut-no-such-program"])
        assert client.wait_exit(missing, 10) == 127
        assert "cannot start 'blut-no-such-program'" in err.read_text()
    finally:
        client.close()
