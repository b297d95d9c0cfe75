"""The Ray cluster the launcher's tests run against.

With ``RAY_ADDRESS`` set, the tests use that cluster (with ``RAY_AUTH_TOKEN`` and friends from
the environment). Without it, the first test that needs one brings up a two-node test
cluster with ``tools/cluster/ray-up.sh`` in a temporary directory and tears it down (by pid,
never ``ray stop``) at the end of the session; where that cannot be done the tests say why
they are skipped.
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
    config.addinivalue_line("markers", "ray: needs a Ray cluster (RAY_ADDRESS, or root to start one)")


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"')
    return env


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict[str, str]]:
    """The cluster's environment (``RAY_ADDRESS``..., ``BLUT_RAY_STATE_DIR`` when started here)."""
    pytest.importorskip("ray", reason="ray is not installed (pip install -e packages/blut-launcher-ray)")
    if os.environ.get("RAY_ADDRESS"):
        yield {k: v for k, v in os.environ.items() if k.startswith(("RAY_", "BLUT_RAY_"))}
        return
    if os.geteuid() != 0:
        pytest.skip("no RAY_ADDRESS, and the test cluster's stage cgroups need root "
                    "(tools/cluster/ray-up.sh)")
    state = Path(tempfile.mkdtemp(prefix="blut-ray-test-"))
    proc = subprocess.run([str(TOOLS / "ray-up.sh"), str(state), "--nodes", "2"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        subprocess.run([str(TOOLS / "ray-down.sh"), str(state)], capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)
        pytest.skip(f"could not start a test Ray cluster: {proc.stderr.strip()[-300:]}")
    env = _read_env(state / "env.sh")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        import ray

        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        subprocess.run([str(TOOLS / "ray-down.sh"), str(state)], capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)
