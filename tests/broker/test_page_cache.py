"""Calibration learns the memory a stage needs, not the page cache of the files it writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from blut_core import App, Classification
from blut_core.model.sizes import MiB
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import read_events
from blut_plugins.cgroup import usage


def _fake_cgroup(path: Path, version: int, usage_bytes: int, active: int, inactive: int) -> None:
    """The files of a cgroup's memory accounting, as the kernel shows them."""
    path.mkdir(exist_ok=True)
    prefix = "total_" if version == 1 else ""
    stat = (f"{prefix}cache {active + inactive}\n{prefix}rss 1\n" if version == 1 else
            f"anon 1\nfile {active + inactive}\n")
    stat += f"{prefix}active_file {active}\n{prefix}inactive_file {inactive}\n"
    (path / "memory.stat").write_text(stat)
    name = "memory.usage_in_bytes" if version == 1 else "memory.current"
    (path / name).write_text(f"{usage_bytes}\n")


@pytest.mark.parametrize("version", [1, 2])
def test_need_is_the_peak_less_the_file_pages_left(tmp_path: Path, version: int) -> None:
    cg = tmp_path / "cage"
    # a stage that wrote files: the peak rode the 192 MiB cap; 170 MiB of cache is left
    _fake_cgroup(cg, version, usage_bytes=172 * MiB, active=20 * MiB, inactive=150 * MiB)
    assert usage.file_pages(str(cg), version) == 170 * MiB
    assert usage.unreclaimable(str(cg), version) == 2 * MiB
    assert usage.need_bytes(str(cg), version, peak=192 * MiB, sampled=0) == 22 * MiB
    # a burst of memory, freed and then filled with cache, is kept by the sampler
    assert usage.need_bytes(str(cg), version, peak=192 * MiB, sampled=150 * MiB) == 150 * MiB
    # never above the kernel's own peak
    assert usage.need_bytes(str(cg), version, peak=100 * MiB, sampled=150 * MiB) == 100 * MiB
    # no memory.stat: the kernel's peak as it is
    assert usage.need_bytes(str(tmp_path / "gone"), version, peak=64 * MiB, sampled=0) == 64 * MiB


def test_the_sampler_keeps_the_highest_unreclaimable_usage(tmp_path: Path) -> None:
    cg = tmp_path / "cage"
    _fake_cgroup(cg, 1, usage_bytes=100 * MiB, active=0, inactive=10 * MiB)
    sampler = usage.Sampler(interval=0.005)
    watch = sampler.watch(str(cg), 1)
    deadline = time.monotonic() + 5
    while watch.high < 90 * MiB and time.monotonic() < deadline:
        time.sleep(0.01)
    _fake_cgroup(cg, 1, usage_bytes=60 * MiB, active=0, inactive=50 * MiB)  # freed, then cached
    time.sleep(0.05)
    assert sampler.unwatch(watch) == 90 * MiB


@pytest.mark.cgroup
def test_a_stage_writing_four_times_its_cap_is_not_oom_killed_and_its_calibration_holds(
        app: App, caged: str) -> None:
    # declares 128 MiB (a 192 MiB cap) and writes 768 MiB of files, three runs in a row
    from blut_core import Broker

    admitted, learnt = [], []
    for _ in range(3):
        summary = start_run(app, prepare(app, "memtest:writer", overrides=["mb=768"]))
        [writer] = summary.stages
        assert summary.outcome == "ok" and writer.attempt == 1
        assert writer.classification is Classification.OK
        events = list(read_events(summary.run_dir / "status.jsonl"))
        assert not [e for e in events if e.get("classification") == "oom"]
        [adm] = [e for e in events if e["event"] == "stage_admitted"]
        admitted.append((adm["footprint_bytes"], adm["cap_bytes"]))
        [entry] = [e for e in Broker(app).store.entries() if e.stage == "writer"]
        assert entry.key.text == adm["calibration_key"] and entry.source == "measured"
        learnt.append(entry.peak)
    first_cap = admitted[0][1]
    assert first_cap == 192 * MiB and 768 * MiB >= 4 * first_cap
    # what it needs is well under its first cap: the page cache is not learnt
    assert all(peak < first_cap // 2 for peak in learnt), learnt
    # and it does not ratchet: the second and third runs are admitted alike
    (fp2, cap2), (fp3, cap3) = admitted[1], admitted[2]
    assert fp3 - fp2 < 8 * MiB and cap3 - cap2 < 8 * MiB, admitted
    assert learnt[2] - learnt[1] < 8 * MiB, learnt
