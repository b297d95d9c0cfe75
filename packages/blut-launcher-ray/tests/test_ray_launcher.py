"""The Ray launcher against a real Ray cluster: the launcher contract, a whole run, and what
only Ray does (a node lost)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("blut_launcher_ray", reason="not installed (pip install -e packages/blut-launcher-ray)")

from blut_launcher_ray.launcher import RayLauncher
from blut_launcher_ray.settings import RaySettings

from blut_core import ExecOptions
from blut_core.model import PeakSource
from blut_core.testing import RunRecipe, make_app
from blut_core.testing.contracts import LauncherContract

MiB = 1 << 20
pytestmark = pytest.mark.ray


class TestRayLauncher(LauncherContract):
    remote = True
    patience = 90.0
    run_tag = "ray-contract"

    @pytest.fixture
    def launcher(self, ray_cluster: dict[str, str]) -> Iterator[RayLauncher]:
        launcher = RayLauncher(RaySettings(poll_interval=0.2))
        yield launcher
        launcher.close()

    def test_find_jobs_by_run_tag(self, launcher: Any, tmp_path: Path) -> None:
        pytest.skip("Ray tasks are owned by their driver and end with it: none is left to find")

    def test_peak_is_the_kernels(self, launcher: RayLauncher, tmp_path: Path) -> None:
        state = self.run_one(launcher, self.job(tmp_path, self.py("x = bytearray(60 << 20)")))
        assert state.returncode == 0 and state.peak_source is PeakSource.KERNEL
        assert state.peak_bytes is not None and 60 * MiB <= state.peak_bytes <= 90 * MiB
        assert state.started_at is not None and state.node


def test_quickstart_on_ray(ray_cluster: dict[str, str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    app = make_app(home, cookbooks=["quickstart"], plugins=["launcher-ray"])
    summary = RunRecipe(app)("quickstart:wordcount", launcher="ray", options=ExecOptions(no_cache=True))
    assert summary.outcome == "ok", [s.error for s in summary.stages]
    events = [json.loads(line) for line in (summary.run_dir / "status.jsonl").read_text().splitlines()]
    started = [e for e in events if e["event"] == "stage_started"]
    assert started and all(e["launcher"] == "ray" for e in started)
    finished = [e for e in events if e["event"] == "stage_finished"]
    assert all(e.get("peak_bytes") and e.get("node") for e in finished)


def test_a_dead_node_is_lost_and_its_stage_retried(ray_cluster: dict[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import threading
    import time
    from importlib import metadata as md

    state_dir = ray_cluster.get("BLUT_RAY_STATE_DIR")
    if not state_dir or not (Path(state_dir) / "pids").exists():
        pytest.skip("needs the two-node test cluster of tools/cluster (BLUT_RAY_STATE_DIR)")
    tools = Path(__file__).resolve().parents[3] / "tools" / "cluster"
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "book"))
    home = tmp_path / "home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    book = md.EntryPoint(name="raybook", value="ray_book", group="blut.cookbooks")
    app = make_app(home, cookbooks=[book], plugins=["launcher-ray"])
    downed = threading.Event()

    def take_node2_down() -> None:  # once both stages run (one CPU a node: one on each)
        end = time.monotonic() + 90
        while time.monotonic() < end:
            runs = list((home / "runs").glob("*/stages/*/attempts/1/events.jsonl"))
            if len(runs) >= 2:
                time.sleep(2)
                subprocess.run([str(tools / "ray-node.sh"), state_dir, "down"], capture_output=True,
                               timeout=120)
                downed.set()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=take_node2_down, daemon=True)
    killer.start()
    try:
        summary = RunRecipe(app)("raybook:spread", launcher="ray", options=ExecOptions(no_cache=True),
                                 stages=2, seconds=20.0)
    finally:
        killer.join(timeout=5)
        subprocess.run([str(tools / "ray-node.sh"), state_dir, "up"], capture_output=True, timeout=300)
    assert downed.is_set()
    assert summary.outcome == "ok", [s.error for s in summary.stages]
    events = [json.loads(line) for line in (summary.run_dir / "status.jsonl").read_text().splitlines()]
    lost = [e for e in events if e["event"] == "stage_finished" and e.get("classification") == "lost"]
    assert lost, "no attempt was lost with its node"
