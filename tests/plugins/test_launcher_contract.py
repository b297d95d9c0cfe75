"""The local launcher keeps the launcher contract; ``blut run --launcher`` picks and checks one.

The contract suite (:class:`blut_core.testing.contracts.LauncherContract`) runs here with
the local launcher under this machine's containment; the Slurm and Ray launchers run it in
their packages' tests, against real clusters.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blut_core.testing.contracts import LauncherContract
from tests.support.cli import blut_argv


class TestLocalLauncher(LauncherContract):
    remote = False
    patience = 30.0

    @pytest.fixture
    def launcher(self, app: Any) -> Iterator[Any]:
        from blut_core.broker.select import select_containment
        from blut_plugins.local.launcher import LocalLauncher

        launcher = LocalLauncher(None, select_containment(app.registry, os.environ).containment)
        yield launcher
        launcher.close()


def _blut(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLUT_HOME": str(tmp_path / "home"), "BLUT_NO_STALE_CHECK": "1",
           "BLUT_DISABLE_PLUGINS": "launcher-slurm,launcher-ray"}
    return subprocess.run([*blut_argv(), *args], env=env, capture_output=True, text=True, timeout=120)


def test_an_unknown_launcher_lists_the_installed_ones(tmp_path: Path) -> None:
    proc = _blut(tmp_path, "run", "quickstart:wordcount", "--launcher", "nosuch", "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert "no launcher named 'nosuch' is installed" in proc.stderr
    assert "available: local" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "home" / "runs").exists() or not any((tmp_path / "home" / "runs").iterdir())


@pytest.mark.parametrize(("name", "dist"), [("slurm", "blut-launcher-slurm"), ("ray", "blut-launcher-ray")])
def test_slurm_and_ray_name_their_distribution(tmp_path: Path, name: str, dist: str) -> None:
    proc = _blut(tmp_path, "run", "quickstart:wordcount", "--launcher", name, "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert f"pip install {dist}" in proc.stderr


# -- the remote shim (python -m blut_core.process.shim) ------------------------------------------

def _shim(*args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "blut_core.process.shim", *args], capture_output=True,
                          text=True, timeout=120)


def test_shim_writes_the_exit_record_last(tmp_path: Path) -> None:
    import json

    record = tmp_path / "exit.json"
    proc = _shim(str(record), "--", "sh", "-c", f"test ! -e {record} && exit 4")
    assert proc.returncode == 4
    data = json.loads(record.read_text())
    assert data["returncode"] == 4 and data["signal"] is None
    assert data["started_at"] <= data["ended_at"] and data["node"]
    assert [p.name for p in tmp_path.iterdir()] == ["exit.json"], "a temporary file was left behind"


def test_shim_reports_a_signal(tmp_path: Path) -> None:
    import json

    record = tmp_path / "exit.json"
    _shim(str(record), "--", "sh", "-c", "kill -KILL $$")
    data = json.loads(record.read_text())
    assert data["signal"] == 9 and data["returncode"] == -9


def test_shim_names_a_run_directory_the_node_cannot_see(tmp_path: Path) -> None:
    missing = tmp_path / "not-shared" / "attempt" / "exit.json"
    proc = _shim(str(missing), "--", "true")
    assert proc.returncode == 2
    assert str(missing.parent) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not missing.exists()


@pytest.mark.cgroup
def test_shim_cap_is_a_kernel_cap_with_oom_evidence(tmp_path: Path) -> None:
    import json
    import sys

    if not os.path.isdir("/sys/fs/cgroup/memory") or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup v1 memory controller")
    record = tmp_path / "exit.json"
    _shim(str(record), "--cap", str(100 << 20), "--", sys.executable, "-c", "b = bytearray(400 << 20)")
    data = json.loads(record.read_text())
    assert data["oom_kills"] >= 1 and data["returncode"] != 0
    assert data["peak_bytes"] <= (100 << 20) + (1 << 20)
    assert not os.path.exists(data["cgroup"]), "the stage's cgroup was left behind"
    fine = tmp_path / "fine.json"
    _shim(str(fine), "--cap", str(400 << 20), "--", sys.executable, "-c", "b = bytearray(150 << 20)")
    peak = json.loads(fine.read_text())["peak_bytes"]
    assert abs(peak - (150 << 20) - (10 << 20)) <= 15 << 20  # the stage's interpreter and 150 MiB
