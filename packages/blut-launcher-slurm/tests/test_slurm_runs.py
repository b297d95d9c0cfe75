"""Whole runs on a real Slurm cluster: a recipe end to end, an OOM kill by Slurm's cgroup
healed by a retry and learnt for the next run, stages over both nodes, a node lost mid-run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from importlib import metadata as md
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("blut_launcher_slurm",
                    reason="not installed (pip install -e packages/blut-launcher-slurm)")

from blut_core import ExecOptions
from blut_core.testing import make_app

pytestmark = pytest.mark.slurm
BOOK = Path(__file__).resolve().parent / "book"
TOOLS = Path(__file__).resolve().parents[3] / "tools" / "cluster"


@pytest.fixture
def slurm_app(slurm_cluster: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BOOK))
    home = tmp_path / "home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    book = md.EntryPoint(name="slurmbook", value="slurm_book", group="blut.cookbooks")
    return make_app(home, cookbooks=["quickstart", book], plugins=["launcher-slurm"])


def _run(app: Any, recipe: str, jobs: int | None = None, **params: Any) -> Any:
    from blut_core.testing import RunRecipe

    return RunRecipe(app)(recipe, launcher="slurm", options=ExecOptions(no_cache=True, jobs=jobs),
                          **params)


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "status.jsonl").read_text().splitlines()]


def test_quickstart_on_slurm(slurm_app: Any) -> None:
    summary = _run(slurm_app, "quickstart:wordcount")
    assert summary.outcome == "ok", [s.error for s in summary.stages]
    events = _events(summary.run_dir)
    started = [e for e in events if e["event"] == "stage_started"]
    assert started and all(e["launcher"] == "slurm" and e["job_id"] for e in started)
    finished = [e for e in events if e["event"] == "stage_finished"]
    assert all(e.get("node") in ("node1", "node2") for e in finished)
    assert all(e.get("peak_bytes") for e in finished), "every stage's kernel peak is recorded"


def test_an_oom_kill_by_slurm_is_retried_bigger_and_learnt(slurm_app: Any) -> None:
    first = _run(slurm_app, "slurmbook:liar", mb=200, declared="96M")
    assert first.outcome == "ok", [s.error for s in first.stages]
    events = _events(first.run_dir)
    ooms = [e for e in events if e["event"] == "stage_finished" and e.get("classification") == "oom"]
    assert ooms, "the liar was not OOM-killed under its 96M cap"
    caps = [e["cap_bytes"] for e in events if e["event"] == "stage_started"]
    assert len(caps) >= 2 and caps[-1] > caps[0]
    second = _run(slurm_app, "slurmbook:liar", mb=200, declared="96M")
    assert second.outcome == "ok"
    again = [e for e in _events(second.run_dir) if e["event"] == "stage_started"]
    assert len(again) == 1, "calibration did not learn the liar's peak from the cluster's kernel"


def test_stages_spread_over_both_nodes(slurm_app: Any, slurm_cluster: dict[str, str]) -> None:
    if "node2" not in slurm_cluster.get("BLUT_SLURM_NODES", ""):
        pytest.skip("needs a two-node cluster")
    summary = _run(slurm_app, "slurmbook:spread", jobs=4, stages=6, seconds=3.0)
    assert summary.outcome == "ok"
    nodes = {(summary.run_dir / "stages" / f"s{i}" / "out" / "node.txt").read_text() for i in range(6)}
    assert nodes == {"node1", "node2"}


def test_a_node_taken_down_mid_run_and_its_stage_finishes_on_the_other(
        slurm_app: Any, slurm_cluster: dict[str, str]) -> None:
    state_dir = slurm_cluster.get("BLUT_SLURM_STATE_DIR")
    if not state_dir or "node2" not in slurm_cluster.get("BLUT_SLURM_NODES", ""):
        pytest.skip("needs the two-node test cluster of tools/cluster (BLUT_SLURM_STATE_DIR)")
    downed = threading.Event()

    def take_node2_down() -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            out = subprocess.run(["squeue", "--noheader", "--states=RUNNING", "--nodelist=node2",
                                  "--format=%j"], capture_output=True, text=True).stdout
            if "blut." in out:
                subprocess.run([str(TOOLS / "slurm-node.sh"), state_dir, "down", "node2"],
                               capture_output=True, timeout=120)
                downed.set()
                return
            time.sleep(0.3)

    killer = threading.Thread(target=take_node2_down, daemon=True)
    killer.start()
    try:
        summary = _run(slurm_app, "slurmbook:spread", jobs=4, stages=4, seconds=25.0, tag="lost")
    finally:
        killer.join(timeout=5)
        subprocess.run([str(TOOLS / "slurm-node.sh"), state_dir, "up", "node2"], capture_output=True,
                       timeout=120)
    assert downed.is_set(), "no stage ran on node2 to take down"
    assert summary.outcome == "ok", [s.error for s in summary.stages]
    events = _events(summary.run_dir)
    lost = [e for e in events if e["event"] == "stage_finished" and e.get("classification") == "lost"]
    assert lost and all(e.get("node") == "node2" for e in lost)
    for e in lost:
        out = summary.run_dir / "stages" / e["stage"] / "out" / "node.txt"
        assert out.read_text() == "node1"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_admission_is_against_the_cluster_not_this_box(slurm_app: Any) -> None:
    import os

    from blut_core.errors import AdmissionRefused
    from blut_core.run.service import Broker

    ledger = Broker(slurm_app).ledger  # this machine's, as the run would use it
    # 14 GiB fits this 24 GiB box, but no node of the test cluster (half the box each)
    with pytest.raises(AdmissionRefused, match=r"needs 14\.0 GiB, but the launcher's largest job can give"):
        _run(slurm_app, "slurmbook:liar", mb=8, declared="14G")
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # bookings this process (the run's driver) holds in the machine's ledger
        while not done.is_set():
            seen.append(sum(b.pid == os.getpid() for b in ledger.bookings()) if ledger.path.exists() else 0)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = _run(slurm_app, "slurmbook:spread", jobs=4, stages=4, seconds=2.0, tag="ledger")
    finally:
        done.set()
        watcher.join(timeout=5)
    assert summary.outcome == "ok"
    assert seen and max(seen) == 0, "a remote stage was booked in this machine's ledger"
    admitted = [e for e in _events(summary.run_dir) if e["event"] == "stage_admitted"]
    assert len(admitted) == 4


def _cli_env(tmp_path: Path) -> dict[str, str]:
    import os

    from blut_core.testing import installed_distribution

    site = installed_distribution(tmp_path / "site", "blut-slurmbook", "0.0",
                                  {"blut.cookbooks": {"slurmbook": "slurm_book"}})
    return {**os.environ, "BLUT_HOME": str(tmp_path / "cli-home"), "BLUT_NO_STALE_CHECK": "1",
            "PYTHONPATH": os.pathsep.join([str(site), str(BOOK), os.environ.get("PYTHONPATH", "")])}


def _jobs_named(prefix: str) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%j"], capture_output=True, text=True).stdout
    return [line.split("|")[0] for line in out.splitlines() if line.partition("|")[2].startswith(prefix)]


def _driver_killed_mid_run(tmp_path: Path, seconds: float) -> tuple[str, dict[str, str]]:
    """Start a run of four stages on Slurm, kill -9 its driver once they run; its run id."""
    import os
    import signal

    env = _cli_env(tmp_path)
    driver = subprocess.Popen(["blut", "run", "slurmbook:spread", "-p", f"seconds={seconds}", "-p",
                               "stages=4", "--launcher", "slurm", "-j", "4", "--no-progress", "--no-cache"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "cli-home" / "runs"
    end = time.monotonic() + 60
    run_id = ""
    while time.monotonic() < end and not run_id:
        ids = [p.name for p in runs.iterdir() if not p.name.startswith(".")] if runs.exists() else []
        if ids and len(_jobs_named(f"blut.{ids[0]}")) >= 4:
            run_id = ids[0]
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert run_id, "the run's jobs never all reached Slurm"
    assert _jobs_named(f"blut.{run_id}"), "its jobs should outlive the dead driver"
    return run_id, env


def test_cancel_after_kill_9_of_the_driver_leaves_no_orphan_job(slurm_cluster: Any, tmp_path: Path) -> None:
    run_id, env = _driver_killed_mid_run(tmp_path, 300.0)
    proc = subprocess.run(["blut", "cancel", run_id], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    end = time.monotonic() + 30
    while _jobs_named(f"blut.{run_id}") and time.monotonic() < end:
        time.sleep(0.5)
    assert _jobs_named(f"blut.{run_id}") == [], "an orphan job of the cancelled run is still on the cluster"


def test_resume_after_kill_9_of_the_driver_cancels_the_orphans_and_reruns(slurm_cluster: Any,
                                                                         tmp_path: Path) -> None:
    run_id, env = _driver_killed_mid_run(tmp_path, 15.0)
    orphans = set(_jobs_named(f"blut.{run_id}"))
    proc = subprocess.run(["blut", "resume", run_id, "--no-progress"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    status = tmp_path / "cli-home" / "runs" / run_id / "status.jsonl"
    events = [json.loads(line) for line in status.read_text().splitlines()]
    resumed = [e for e in events if e["event"] == "run_resumed"]
    # on this one-machine cluster the stage processes may already have been killed as local
    # orphans (they carry the run's id); the jobs left are cancelled through the launcher
    assert resumed and set(resumed[-1]["cancelled_jobs"]) <= orphans
    assert not orphans & set(_jobs_named("blut.")), "an orphan job was left running"
    assert events[-1]["event"] == "run_finished" and events[-1]["outcome"] == "ok"
