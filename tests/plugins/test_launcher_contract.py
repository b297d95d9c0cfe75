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
