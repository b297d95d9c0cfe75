"""What a Ray worker runs for an attempt (:func:`blut_launcher_ray.task.run_attempt`), run here
in this process as a worker runs it: a large, multi-threaded caller that starts stage after
stage, each in a cgroup of its own."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("blut_launcher_ray", reason="not installed (pip install -e packages/blut-launcher-ray)")

from blut_launcher_ray.task import run_attempt

MiB = 1 << 20
pytestmark = pytest.mark.cgroup


@pytest.fixture(autouse=True)
def _needs_cgroup_v1() -> None:
    if not os.path.isdir("/sys/fs/cgroup/memory") or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup v1 memory controller")


def _memory_cgroups() -> set[str]:
    """The memory cgroup of every thread of this process (a thread that ended meanwhile is
    in none)."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/cgroup") as fh:
                text = fh.read()
        except FileNotFoundError:
            continue
        found |= {line.split(":", 2)[2] for line in text.splitlines()
                  if "memory" in line.split(":")[1].split(",")}
    return found


def _attempt(tmp_path: Path, argv: list[str], cap: int = 256 * MiB, name: str = "1") -> tuple[dict, Path]:
    adir = tmp_path / name
    adir.mkdir()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    returned = run_attempt(str(adir / "exit.json"), argv, env, str(adir / "work"), str(adir / "stdout.log"),
                           str(adir / "stderr.log"), cap, [str(adir / "work")])
    assert returned is not None
    return returned, adir


def test_the_record_is_returned_as_written_and_the_stage_is_born_in_its_cgroup(tmp_path: Path) -> None:
    home = _memory_cgroups()
    record, adir = _attempt(tmp_path, ["sh", "-c", "cat /proc/self/cgroup; exit 3"])
    assert record == json.loads((adir / "exit.json").read_text())
    assert record["returncode"] == 3 and record["cap_bytes"] == 256 * MiB
    assert not record["cgroup_shared_with_shim"]
    seen = [line.split(":", 2)[2] for line in (adir / "stdout.log").read_text().splitlines()
            if "memory" in line.split(":")[1].split(",")]
    assert seen and record["cgroup"].endswith(seen[0]), "the stage ran outside its own cgroup"
    assert not os.path.exists(record["cgroup"]), "the stage's cgroup was left behind"
    assert _memory_cgroups() == home, "a thread of the caller stayed in the stage's cgroup"


def test_the_callers_memory_is_never_the_stages(tmp_path: Path) -> None:
    held = bytearray(200 * MiB)  # a worker's heap, touched: resident
    for i in range(0, len(held), 4096):
        held[i] = 1
    stop = threading.Event()

    def churn() -> None:  # another thread of the caller allocating while stages start
        while not stop.is_set():
            block = bytearray(8 * MiB)
            block[::4096] = b"\x01" * len(block[::4096])

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        peaks = [_attempt(tmp_path, ["true"], cap=64 * MiB, name=str(i))[0]["peak_bytes"] for i in range(5)]
    finally:
        stop.set()
        worker.join()
    assert all(p is not None and p < 16 * MiB for p in peaks), [p / MiB for p in peaks]
    assert held[4096] == 1


def test_a_stage_past_its_cap_is_oom_killed_by_the_kernel(tmp_path: Path) -> None:
    record, _ = _attempt(tmp_path, [sys.executable, "-c", "b = bytearray(300 << 20)"], cap=100 * MiB)
    assert record["oom_kills"] >= 1 and record["returncode"] != 0
    assert record["peak_bytes"] <= 101 * MiB


def test_a_program_that_cannot_start_is_a_record_naming_it(tmp_path: Path) -> None:
    home = _memory_cgroups()
    record, _ = _attempt(tmp_path, ["/nonexistent/stage-program"])
    assert record["returncode"] == 127 and "/nonexistent/stage-program" in record["error"]
    assert _memory_cgroups() == home
    here = Path("/sys/fs/cgroup/memory", *home.pop().strip("/").split("/"))
    assert not [p.name for p in here.glob(f"blut-1-{os.getpid()}-*")], "the stage's cgroup was left behind"
