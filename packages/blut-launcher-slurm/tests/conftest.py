"""The Slurm cluster the launcher's tests run against.

With ``SLURM_CONF`` set, the tests use that cluster. Without it, the first test that needs
one brings up a two-node test cluster with ``tools/cluster/slurm-up.sh`` in a temporary
directory and tears it down at the end of the session (root only; where that cannot be
done the tests say why they are skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / "tools" / "cluster"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: needs a Slurm cluster (SLURM_CONF, or root to start one)")


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"')
    return env


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """The cluster's environment (``SLURM_CONF``, and ``BLUT_SLURM_STATE_DIR`` when started here)."""
    if os.environ.get("SLURM_CONF"):
        yield {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "BLUT_SLURM_"))}
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM_CONF, and starting a test cluster needs root (tools/cluster/slurm-up.sh)")
    if not (TOOLS / "slurm-up.sh").exists():
        pytest.skip(f"no SLURM_CONF, and {TOOLS / 'slurm-up.sh'} is not there to start one")
    state = Path(tempfile.mkdtemp(prefix="blut-slurm-test-"))
    proc = subprocess.run([str(TOOLS / "slurm-up.sh"), str(state), "--nodes", "2"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        subprocess.run([str(TOOLS / "slurm-down.sh"), str(state)], capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)
        pytest.skip(f"could not start a test Slurm cluster: {proc.stderr.strip()[-300:]}")
    env = _read_env(state / "env.sh")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        subprocess.run([str(TOOLS / "slurm-down.sh"), str(state)], capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)
