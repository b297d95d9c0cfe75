"""Fixtures of the broker's tests: a private ledger, the memtest cookbook, cgroup checks."""

from __future__ import annotations

import os
from importlib import metadata as md
from pathlib import Path

import pytest

from blut_core import App
from blut_core.broker.select import select_containment
from blut_core.testing import COOKBOOK_GROUP

MEMTEST = md.EntryPoint(name="memtest", value="tests.broker.memcook", group=COOKBOOK_GROUP)


@pytest.fixture(autouse=True)
def private_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test books in its own ledger and starts from the default broker settings."""
    path = tmp_path / "ledger" / "ledger.json"
    monkeypatch.setenv("BLUT_LEDGER", str(path))
    for name in ("BLUT_CONTAINMENT", "BLUT_NO_CALIBRATION", "BLUT_FLOOR", "BLUT_HEADROOM",
                 "BLUT_ESCALATION_STEP", "BLUT_ESCALATION_FACTOR", "BLUT_DEFAULT_FOOTPRINT",
                 "BLUT_ADMISSION_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [MEMTEST]


@pytest.fixture
def caged(app: App) -> str:
    """The kernel-capping backend this machine offers, or a skip that says why not."""
    sel = select_containment(app.registry, os.environ)
    if not (sel.containment.enforces and sel.containment.kernel_evidence):
        reasons = "; ".join(f"{b.name}: {b.reason}" for b in sel.backends if b.reason)
        pytest.skip(f"no cgroup containment backend is usable here ({reasons})")
    return sel.name
