"""The probe and the choice of containment backend."""

from __future__ import annotations

import statistics
import time

import pytest

from blut_core import App, ConfigError
from blut_core.broker.machine import probe
from blut_core.broker.select import select_containment


def test_probe_reads_this_machine() -> None:
    snap = probe()
    assert snap.known and 0 < snap.box <= snap.mem_total
    assert 0 < snap.available <= snap.box
    assert snap.cpus >= 1
    assert set(snap.to_json()) >= {"box_bytes", "available_bytes", "cgroup", "cpus"}


def test_probe_is_cheap() -> None:
    probe()
    times = []
    for _ in range(200):
        t = time.perf_counter()
        probe()
        times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.001


def test_auto_picks_the_first_usable_backend(app: App) -> None:
    sel = select_containment(app.registry, {})
    probed = [b for b in sel.backends if b.probed]
    assert probed[-1].name == sel.name and probed[-1].reason is None
    assert all(b.reason for b in probed[:-1])
    assert [b.priority for b in sel.backends] == sorted(b.priority for b in sel.backends)


def test_forced_backends(app: App) -> None:
    assert select_containment(app.registry, {"BLUT_CONTAINMENT": "bare"}).warning
    with pytest.raises(ConfigError) as info:
        select_containment(app.registry, {"BLUT_CONTAINMENT": "nope"})
    assert "unknown containment 'nope'" in info.value.message and info.value.exit_code == 2
    sel = select_containment(app.registry, {"BLUT_CONTAINMENT": "rlimit"})
    assert sel.forced and sel.name == "rlimit" and sel.warning is None


def test_systemd_without_systemd_is_a_refusal_not_a_fallback(app: App) -> None:
    from blut_plugins.systemd.backend import Systemd

    reason = Systemd().unusable_reason()
    if reason is None:
        pytest.skip("systemd-run works on this machine")
    with pytest.raises(ConfigError) as info:
        select_containment(app.registry, {"BLUT_CONTAINMENT": "systemd"})
    assert "not usable here" in info.value.message and reason in info.value.message
