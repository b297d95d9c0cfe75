"""The fork server's driver end: closing a server that ran nothing does not wait for its start-up."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.support.procs import alive

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


