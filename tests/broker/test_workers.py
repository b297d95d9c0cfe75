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
from blut_core.run.orchestrate import prepare, start_run

pytestmark = pytest.mark.cgroup


@pytest.fixture
def caged(app: App) -> str:
    sel = select_containment(app.registry, os.environ)
    if not (sel.containment.enforces and sel.containment.kernel_evidence):
        pytest.skip("workers are reused only under cgroup containment, which is not usable here")
    return sel.name


@pytest.fixture
def workers_for_few_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """These runs have a few command stages only; a run of many (as many as
    ``FORK_SERVER_MIN_COMMANDS``) starts them by workers the same way."""
    from blut_plugins.local.launcher import LocalLauncher

    monkeypatch.setattr(LocalLauncher, "FORK_SERVER_MIN_COMMANDS", 0)


def _seen(run_dir: Path, stage: str) -> dict[str, Any]:
    return json.loads((run_dir / "stages" / stage / "out" / "seen.json").read_text())  # type: ignore[no-any-return]


def test_a_reused_worker_gives_each_stage_a_clean_process_view(app: App, caged: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "1")
    summary = start_run(app, prepare(app, "memtest:probes", overrides=["tag=reuse"]))
    assert summary.outcome == "ok", summary
    seen = {s: _seen(summary.run_dir, s) for s in "abctz"}
    by_name = {o.stage: o for o in summary.stages}
    # a, b and c ran one after another on the (at most two) idle workers: one was reused
    assert len({seen[s]["pid"] for s in "abc"}) <= 2
    for s in "bc":  # yet nothing of an earlier stage is visible to a later one
        assert seen[s]["leak"] is None and seen[s]["cwd"] == seen[s]["work"]
        stdout = (summary.run_dir / f"stages/{s}/attempts/1/stdout.log").read_text()
        assert stdout == f"stdout of {s}\n"
        # its cgroup is its own: the kernel's peak does not carry a's 96 MiB
        assert (by_name[s].peak_bytes or 0) < 32 << 20
    assert (by_name["a"].peak_bytes or 0) > 96 << 20
    # t left a thread running: its worker is not trusted with z
    assert seen["z"]["pid"] != seen["t"]["pid"]


def test_reuse_can_be_turned_off(app: App, caged: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "0")
    summary = start_run(app, prepare(app, "memtest:probes", overrides=["tag=fresh"]))
    assert summary.outcome == "ok", summary
    assert len({_seen(summary.run_dir, s)["pid"] for s in "abctz"}) == 5


def test_command_stages_are_started_by_reused_workers(app: App, caged: str,
                                                      workers_for_few_commands: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from blut_core.store.rundir import read_events

    monkeypatch.setenv("BLUT_REUSE_WORKERS", "1")
    summary = start_run(app, prepare(app, "memtest:commands", overrides=["tag=kill"]))
    events = list(read_events(summary.run_dir / "status.jsonl"))
    started = [e["pid"] for e in events if e["event"] == "stage_started"]
    # once the fork server is up, the chain's commands are started by its (at most two) idle
    # workers, reused, instead of a fork each
    assert len(started) == 7 and len(set(started[1:])) <= 2
    # each command ran as its own process, with its own output
    pids = {(summary.run_dir / f"stages/c{i}/out/pid").read_text() for i in range(6)}
    assert len(pids) == 6
    # a command killed by a signal is reported as such, not as an exit code
    by_name = {o.stage: o for o in summary.stages}
    assert by_name["killed"].returncode == -9 and "SIGKILL" in (by_name["killed"].error or "")


def test_a_forked_child_returning_from_a_stage_never_becomes_a_worker(
        app: App, caged: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "1")
    summary = start_run(app, prepare(app, "memtest:forked", overrides=["tag=fork"]))
    # every later stage ran, each once, in a worker of the server (not in the stray child)
    assert summary.outcome == "ok", summary
    assert all(o.attempt == 1 for o in summary.stages)
    for i in range(4):
        assert _seen(summary.run_dir, f"after{i}")["leak"] is None


def test_each_stage_logging_to_its_own_file_gets_its_own_file(
        app: App, caged: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "1")
    summary = start_run(app, prepare(app, "memtest:logs", overrides=["tag=logs"]))
    assert summary.outcome == "ok", summary
    for i in range(4):
        text = (summary.run_dir / f"stages/log{i}/out/stage.log").read_text()
        assert text.splitlines() == [f"INFO:root:from log{i}"]


def test_a_command_started_by_a_worker_gets_its_soft_timeout_alone(
        app: App, caged: str, workers_for_few_commands: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_REUSE_WORKERS", "1")
    summary = start_run(app, prepare(app, "memtest:cmdtimeouts", overrides=["tag=term"]))
    by = {o.stage: o for o in summary.stages}
    # the command heard SIGTERM and stopped on its own; the worker waited for it
    assert by["polite"].classification.value == "timeout"
    assert "stopped on SIGTERM" in (by["polite"].error or "")
    stdout = (summary.run_dir / "stages/polite/attempts/1/stdout.log").read_text()
    assert "got TERM" in stdout and by["polite"].duration < 5
    # ... as a process of its own, started by a worker (the process blut followed)
    from blut_core.store.rundir import read_events

    [started] = [e for e in read_events(summary.run_dir / "status.jsonl")
                 if e["event"] == "stage_started" and e["stage"] == "polite"]
    shell = int((summary.run_dir / "stages/polite/attempts/1/work/sh.pid").read_text())
    assert started["pid"] != shell
    # the one that ignored it was killed after its grace period, worker and all
    assert by["stubborn"].classification.value == "timeout"
    assert "did not stop within 0.5s" in (by["stubborn"].error or "")
