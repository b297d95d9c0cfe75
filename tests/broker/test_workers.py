"""Python stages run by reused fork-server workers: each stage still gets its own cgroup,
environment, working directory and output, and a worker a stage left unclean is not reused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from blut_core import App
from blut_core.broker.select import select_containment
from blut_core.orchestrate import prepare, start_run

pytestmark = pytest.mark.cgroup


@pytest.fixture
def caged(app: App) -> str:
    sel = select_containment(app.registry, os.environ)
    if not (sel.containment.enforces and sel.containment.kernel_evidence):
        pytest.skip("workers are reused only under cgroup containment, which is not usable here")
    return sel.name


def _seen(run_dir: Path, stage: str) -> dict[str, Any]:
    return json.loads((run_dir / "stages" / stage / "out" / "seen.json").read_text())  # type: ignore[no-any-return]


def test_a_reused_worker_gives_each_stage_a_clean_process_view(app: App, caged: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "1")
    summary = start_run(app, prepare(app, "memtest:probes", overrides=["tag=reuse"]))
    assert summary.outcome == "ok", summary
    a, b, c, d = (_seen(summary.run_dir, s) for s in "abcd")
    by_name = {o.stage: o for o in summary.stages}
    # b ran in the worker a left: no fork, yet nothing of a is visible to it
    assert b["pid"] == a["pid"]
    assert b["leak"] is None and b["cwd"] == b["work"]
    stdout = (summary.run_dir / "stages/b/attempts/1/stdout.log").read_text()
    assert stdout == "stdout of b\n"
    # its cgroup is its own: the kernel's peak does not carry a's 96 MiB
    assert (by_name["a"].peak_bytes or 0) > 96 << 20
    assert (by_name["b"].peak_bytes or 0) < 32 << 20
    # c left a thread running: its worker is not trusted with d
    assert d["pid"] != c["pid"]


def test_reuse_can_be_turned_off(app: App, caged: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "0")
    summary = start_run(app, prepare(app, "memtest:probes", overrides=["tag=fresh"]))
    assert summary.outcome == "ok", summary
    assert len({_seen(summary.run_dir, s)["pid"] for s in "abcd"}) == 4
