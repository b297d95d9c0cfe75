"""The Slurm launcher against a real Slurm cluster: the launcher contract, and what only a
cluster does (a node lost, a run's jobs found by its tag, capacity from sinfo)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("blut_launcher_slurm",
                    reason="not installed (pip install -e packages/blut-launcher-slurm)")

from blut_launcher_slurm.launcher import SlurmLauncher, capacity_of
from blut_launcher_slurm.settings import SlurmSettings

from blut_core.model import PeakSource
from blut_core.testing.contracts import LauncherContract

MiB = 1 << 20
pytestmark = pytest.mark.slurm
TOOLS = Path(__file__).resolve().parents[3] / "tools" / "cluster"


class TestSlurmLauncher(LauncherContract):
    remote = True
    patience = 60.0
    run_tag = "slurm-contract"

    @pytest.fixture
    def launcher(self, slurm_cluster: dict[str, str]) -> Iterator[SlurmLauncher]:
        launcher = SlurmLauncher(SlurmSettings(poll_interval=0.5, lost_job_grace=10))
        yield launcher
        launcher.close()

    def test_peak_is_the_kernels(self, launcher: SlurmLauncher, tmp_path: Path) -> None:
        state = self.run_one(launcher, self.job(tmp_path, self.py("x = bytearray(60 << 20)")))
        assert state.returncode == 0 and state.peak_source is PeakSource.KERNEL
        assert state.peak_bytes is not None and 60 * MiB <= state.peak_bytes <= 90 * MiB
        assert state.node in ("node1", "node2") and state.started_at is not None

    def test_one_status_query_per_round(self, launcher: SlurmLauncher, tmp_path: Path) -> None:
        handles = [launcher.submit(self.job(tmp_path, ["sleep", "2"], name=f"q{i}")) for i in range(5)]
        before = launcher.queries
        states = launcher.poll_many(handles)
        assert set(states) == {h.job_id for h in handles}
        assert launcher.queries - before == 1
        self.finish(launcher, handles)

    def test_job_name_is_the_runs_and_mem_is_the_cap(self, launcher: SlurmLauncher, tmp_path: Path) -> None:
        job = self.job(tmp_path, ["sleep", "30"], cap=300 * MiB)
        handle = launcher.submit(job)
        try:
            out = subprocess.run(["scontrol", "show", "job", handle.job_id], capture_output=True,
                                 text=True, check=True).stdout
            assert f"JobName=blut.{job.run_tag}" in out
            assert "mem=300M" in out
        finally:
            launcher.cancel(handle)
            self.finish(launcher, [handle])

    def test_a_driver_gone_leaves_its_jobs_findable_and_cancellable(self, slurm_cluster: Any,
                                                                  tmp_path: Path) -> None:
        first = SlurmLauncher(SlurmSettings())
        job = self.job(tmp_path, ["sleep", "300"])
        handle = first.submit(job)  # first is dropped without close(): its driver died
        later = SlurmLauncher(SlurmSettings())
        found = later.find_jobs(job.run_tag)
        assert handle.job_id in {h.job_id for h in found}
        for h in found:
            later.cancel(h)
        end = time.monotonic() + 30
        while later.find_jobs(job.run_tag) and time.monotonic() < end:
            time.sleep(0.5)
        assert later.find_jobs(job.run_tag) == [], "an orphan job is still queued or running"

    def test_a_node_failure_is_lost_not_failed(self, launcher: SlurmLauncher, slurm_cluster: Any,
                                               tmp_path: Path) -> None:
        state_dir = slurm_cluster.get("BLUT_SLURM_STATE_DIR")
        if not state_dir or "node2" not in slurm_cluster.get("BLUT_SLURM_NODES", ""):
            pytest.skip("needs the two-node test cluster of tools/cluster (BLUT_SLURM_STATE_DIR)")
        ready = tmp_path / "ready"
        job = self.job(tmp_path, ["sh", "-c", f"echo $SLURMD_NODENAME > {ready}; exec sleep 300"])
        launcher.settings = SlurmSettings(extra_sbatch_args=("--nodelist=node2",), poll_interval=0.5,
                                          lost_job_grace=10)
        handle = launcher.submit(job)
        self.wait_for(ready)
        subprocess.run([str(TOOLS / "slurm-node.sh"), state_dir, "down", "node2"], check=True,
                       capture_output=True, timeout=120)
        try:
            state = self.finish(launcher, [handle], timeout=120)[handle.job_id]
        finally:
            up = _node_up(state_dir)
        assert state.lost, state
        assert "NODE_FAIL" in state.detail
        assert up.returncode == 0 or "already up" in up.stderr + up.stdout, up.stderr


def _node_up(state_dir: str) -> subprocess.CompletedProcess[str]:
    """Bring node2 back (a second try after a pause: under load its first registration can
    miss the script's wait)."""
    for _ in range(3):
        up = subprocess.run([str(TOOLS / "slurm-node.sh"), state_dir, "up", "node2"],
                            capture_output=True, text=True, timeout=120)
        if up.returncode == 0:
            break
        time.sleep(5)
    return up


def test_capacity_of_sinfo() -> None:
    cap = capacity_of("node1|11796|2|idle\nnode2|11796|2|mix\nnode3|4000|8|down*\n")
    assert [n.name for n in cap.nodes] == ["node1", "node2"]
    assert cap.max_job_memory == 11796 * MiB and cap.max_job_cpus == 2


def test_settings_are_checked_before_a_run_directory_exists(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "blut.toml").write_text('[launcher.slurm]\nqos = "no spaces allowed"\n')
    home = tmp_path / "home"
    proc = subprocess.run(["blut", "run", "quickstart:wordcount", "--launcher", "slurm", "--no-progress"],
                          cwd=project, env={**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "[launcher.slurm]: slurm.qos:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (home / "runs").exists() or not [p for p in (home / "runs").iterdir() if p.name != ".setup"]
