"""Real runs under real cgroups on this machine (skipped only where none is usable)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from blut_core import AdmissionRefused, App, Classification, StageState
from blut_core.broker.select import select_containment
from blut_core.cli import main
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events

pytestmark = pytest.mark.cgroup


def _events(run_dir: Path, kind: str) -> list[dict[str, object]]:
    return [e for e in read_events(run_dir / "status.jsonl") if e["event"] == kind]


def _leftover_cgroups(run_id: str) -> list[str]:
    from blut_plugins.cgroup.cage import cgroup_base

    found = []
    for version in (1, 2):
        base = cgroup_base(version)
        if base and os.path.isdir(base):
            found += [n for n in os.listdir(base) if run_id in n]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] != "Z"


def test_oom_is_contained_classified_retried_and_calibrated(app: App, caged: str) -> None:
    summary = start_run(app, prepare(app, "memtest:hog", overrides=["mb=192", "declared=64M"]))
    assert summary.outcome == "ok", summary
    [hog] = summary.stages
    assert hog.state is StageState.OK and hog.attempt == 2
    finished = _events(summary.run_dir, "stage_finished")
    assert finished[0]["classification"] == Classification.OOM.value
    assert finished[0]["cap_bytes"] == 128 << 20          # 64 MiB + 64 MiB headroom
    admitted = _events(summary.run_dir, "stage_admitted")
    assert admitted[1]["source"] == "oom_corrected"
    assert int(admitted[1]["cap_bytes"]) > 128 << 20       # type: ignore[call-overload]
    assert admitted[0]["containment"] == caged
    assert hog.peak_bytes and hog.peak_bytes > 192 << 20
    assert _leftover_cgroups(summary.run_id) == []

    # the next run of the same recipe is admitted at its measured size
    again = start_run(app, prepare(app, "memtest:hog", overrides=["mb=192", "declared=64M"]))
    assert again.outcome == "ok" and again.stages[0].attempt == 1
    [adm] = _events(again.run_dir, "stage_admitted")
    assert adm["source"] == "measured"
    assert adm["footprint_bytes"] == hog.peak_bytes


def test_a_stage_that_can_never_fit_is_refused_before_launch(app: App, caged: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AdmissionRefused) as info:
        start_run(app, prepare(app, "memtest:hog", overrides=["declared=64T"]))
    assert "'hog'" in info.value.message and "box" in info.value.message
    assert not app.settings.runs_dir.exists() or not any(app.settings.runs_dir.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "memtest:hog", "-p", "declared=64T"], app=app)
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "can give at most" in err and "Traceback" not in err


def test_forking_stage_is_capped_as_a_whole_and_leaves_nothing(app: App, caged: str,
                                                                tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    # two detached children of 96 MiB each: together over the 128 MiB cap
    summary = start_run(app, prepare(app, "memtest:forks", overrides=[
        f"pid_file={pids}", "children=2", "child_mb=96", "linger=5"]))
    [forker] = summary.stages
    assert forker.classification is Classification.OOM
    assert _leftover_cgroups(summary.run_id) == []
    for line in (pids.read_text().split() if pids.exists() else []):
        assert not _alive(int(line)), f"child {line} survived its stage"

    # a detached child that outlives a successful stage is killed with the stage's cgroup
    pids.unlink(missing_ok=True)
    summary = start_run(app, prepare(app, "memtest:forks", overrides=[
        f"pid_file={pids}", "children=1", "child_mb=16", "linger=1"]))
    assert summary.outcome == "ok"
    deadline = time.monotonic() + 2
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [int(x) for x in pids.read_text().split()]
    assert children and not any(_alive(p) for p in children)
    assert _leftover_cgroups(summary.run_id) == []


def test_knobs_are_right_sized_and_passed_to_the_stage(app: App, caged: str) -> None:
    summary = start_run(app, prepare(app, "memtest:knobs", overrides=["workers=4096"]))
    assert summary.outcome == "ok"
    [adm] = _events(summary.run_dir, "stage_admitted")
    assert adm["decision"] == "right_size"
    knobs = json.loads((summary.run_dir / "stages/train/out/knobs.json").read_text())
    assert knobs == adm["knobs"] and 1 <= knobs["workers"] < 4096


def test_cages_adopt_and_describe_how_to_join(app: App, caged: str) -> None:
    import subprocess

    sel = select_containment(app.registry, os.environ)
    cage = sel.containment.cage("adopt-test", 64 << 20)
    try:
        proc = subprocess.Popen(["sleep", "30"])
        assert cage.adopt(proc.pid)
        assert cage.cgroup and str(proc.pid) in Path(cage.cgroup, "cgroup.procs").read_text()
        spec = cage.join_spec()
        assert spec is not None and "cgroup_procs" in spec
    finally:
        cage.release()
    assert proc.wait(timeout=5) != 0 and not os.path.exists(cage.cgroup)


def test_empty_cages_of_dead_drivers_are_swept(caged: str) -> None:
    from blut_plugins.cgroup.cage import cgroup_base, sweep_stale

    base = cgroup_base(1 if caged == "cgroup-v1" else 2)
    assert base is not None
    stale = Path(base, "blut-stale-sweep-test")
    stale.mkdir()
    try:
        assert sweep_stale(base, older_than=60) == [] or str(stale) not in sweep_stale(base)
        assert str(stale) in sweep_stale(base, older_than=0)
    finally:
        if stale.exists():
            stale.rmdir()
