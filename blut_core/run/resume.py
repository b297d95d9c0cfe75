"""Continuing a run whose driver died (``blut resume``) and cancelling one (``blut cancel``).

The run directory is the source of truth: finished stages (ok or cached, with their output
promoted) are kept; every other stage runs again, continuing its attempt numbering and, for
stages that called ``ctx.checkpoint()``, from their last checkpoint. Stage processes the
dead driver left behind (every process whose environment names the run) are killed first,
and waited for. A damaged run (see :mod:`blut_core.store.runs`) is refused, in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.errors import ConfigError
from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.model.reprs import record_repr
from blut_core.store.rundir import STATUS, RunDir, StatusLog, read_events
from blut_core.store.runs import RunRecord, find_run, load_run

if TYPE_CHECKING:
    from blut_core.host.app import App
    from blut_core.host.interfaces import Launcher
    from blut_core.model.outcome import RunSummary
    from blut_core.model.plan import Plan
    from blut_core.run.executor import ExecOptions
    from blut_core.run.progress import ProgressSink


def load_plan(path: Path) -> tuple[str, Plan]:
    """The recipe name and the plan recorded in a run directory's ``plan.json``."""
    from blut_core.model.convert import structure
    from blut_core.model.plan import Plan
    from blut_core.model.stage import Stage

    try:
        data = json.loads((path / "plan.json").read_text(encoding="utf-8"))
        stages = tuple(structure(s, Stage, where=f"{path / 'plan.json'}") for s in data["stages"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read the plan of run {path.name}: {exc}",
                          hint="the run directory is damaged; start a new run") from None
    plan = Plan(stages)
    plan.validate()
    return str(data.get("recipe", "?")), plan


@attrs.frozen
class PreviousState:
    """What earlier drivers of a run left: the stages to keep, the attempt numbers used so
    far, each stage's OOM kills among them (they do not use up its error budget, before a
    resume or after), and the pids of attempts that never finished (pid → ``stage#N``)."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    kept: dict[str, StageOutcome]
    attempts: dict[str, int]
    oom_kills: dict[str, int]
    orphans: dict[int, str]


def previous_state(path: Path, plan: Plan) -> PreviousState:
    """Read the status stream of run ``path`` for what a resume starts from."""
    kept: dict[str, StageOutcome] = {}
    attempts: dict[str, int] = {}
    ooms: dict[str, int] = {}
    open_pids: dict[tuple[str, int], int] = {}
    names = {s.name for s in plan}
    for ev in read_events(path / STATUS):
        name = ev.get("stage")
        if name not in names:
            continue
        kind = ev.get("event")
        attempt = int(ev.get("attempt") or 0)
        if kind == "stage_started":
            attempts[name] = max(attempts.get(name, 0), attempt)
            if isinstance(ev.get("pid"), int):
                open_pids[(name, attempt)] = ev["pid"]
        elif kind in ("stage_finished", "stage_skipped"):
            open_pids.pop((name, attempt), None)
            if ev.get("classification") == "oom":
                ooms[name] = ooms.get(name, 0) + 1
            state = ev.get("state", "cached" if kind == "stage_skipped" else None)
            out = path / "stages" / name / "out"
            if state in ("ok", "cached") and ev.get("output_hash") and out.is_dir():
                kept[name] = StageOutcome(
                    stage=name, attempt=attempt,
                    state=StageState.OK if state == "ok" else StageState.CACHED,
                    classification=Classification.OK, output_hash=ev["output_hash"],
                    cache_key=ev.get("cache_key"), peak_bytes=ev.get("peak_bytes"),
                    duration=float(ev.get("duration") or 0.0))
            else:
                kept.pop(name, None)
    orphans = {pid: f"{name}#{n}" for (name, n), pid in open_pids.items()}
    return PreviousState(kept=kept, attempts=attempts, oom_kills=ooms, orphans=orphans)


def _names_run(proc: Any, run_id: str) -> bool:
    """Whether ``proc`` (a psutil process) was started for run ``run_id`` (``BLUT_RUN_ID``)."""
    import psutil

    try:
        return bool(proc.environ().get("BLUT_RUN_ID") == run_id)
    except (psutil.Error, OSError):
        return False


def kill_orphans(run_id: str, pids: Mapping[int, str], *, wait: float = 10.0) -> list[str]:
    """Kill what a dead driver of run ``run_id`` left running; return the attempts killed.

    That is every process whose environment names the run (``BLUT_RUN_ID``), the recorded
    attempts (``pids``: pid → label) among them, each with its process group and everything
    it started; a pid reused by another process is left alone. Returns once they are gone
    (at most ``wait`` seconds), so their cages are empty and can be removed.
    """
    import psutil

    spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        if proc.pid not in spared and _names_run(proc, run_id):
            found[proc.pid] = proc
    killed = [label for pid, label in pids.items() if pid in found]
    victims = dict(found)
    for proc in found.values():
        with contextlib.suppress(psutil.Error):
            victims.update((c.pid, c) for c in proc.children(recursive=True) if c.pid not in spared)
    for pid in found:  # a stage leads its process group: what it left in the group goes too
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
    for proc in victims.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(list(victims.values()), timeout=wait)
    return killed


def _refuse_damaged(record: RunRecord, what: str) -> ConfigError:
    return ConfigError(f"run {record.run_id} is damaged, so it cannot be {what}: "
                       + "; ".join(record.damage),
                       hint=f"`blut runs show {record.run_id}` shows what is still readable; "
                            f"start a new run with `blut run {record.recipe}`, or remove "
                            f"{record.path}")


def resume_run(app: App, ref: str, *, options: ExecOptions | None = None,
               progress: ProgressSink | None = None) -> RunSummary:
    """Continue run ``ref`` (id, prefix or ``latest``) in its own directory."""
    from blut_core.lineage.ingest import check_sinks
    from blut_core.model.outcome import RunInfo
    from blut_core.process.spec import prepare_launcher
    from blut_core.run.executor import Executor
    from blut_core.run.orchestrate import drive, drop_private_ledger, make_launcher, remote_policy
    from blut_core.run.service import Broker
    from blut_core.store.cache import Cache

    path = find_run(app.settings.runs_dir, ref)
    record = load_run(path)
    if record.state == "running":
        raise ConfigError(f"run {record.run_id} is still running",
                          hint=f"wait for it, or stop it first with `blut cancel {record.run_id}`")
    if record.state == "damaged":
        raise _refuse_damaged(record, "resumed")
    if record.state == "ok":
        raise ConfigError(f"run {record.run_id} already finished ok: nothing to resume",
                          hint="start a new run with `blut run`")
    recipe, plan = load_plan(path)
    previous = previous_state(path, plan)
    kept = previous.kept
    sinks = check_sinks(app)
    killed = kill_orphans(record.run_id, previous.orphans)
    provenance = _read(path / "provenance.json")
    launcher_name = str(provenance.get("launcher") or "local")
    broker = Broker(app)
    launcher = make_launcher(app, launcher_name, broker.selection.containment)
    try:  # a remote run is admitted against its launcher's capacity, as when it started
        capacity = launcher.capacity()
        policy = broker.policy(recipe, max_parallel=options.jobs if options else None) \
            if capacity is None else \
            remote_policy(app, broker, capacity, recipe, plan, options, skip=frozenset(kept))
    except BaseException:
        launcher.close()
        raise
    orphan_jobs = cancel_remote_jobs(launcher, record.run_id)  # a cluster's outlive their driver
    prepare_launcher(launcher, [s for s in plan.topological() if s.name not in kept])
    rundir = RunDir(path)
    rundir.claim()
    status = StatusLog(rundir.status_path)
    rerun = [s.name for s in plan.topological() if s.name not in kept]
    status.append("run_resumed", previous_state=record.state, kept=sorted(kept), rerun=rerun,
                  killed=killed, cancelled_jobs=orphan_jobs)
    info = RunInfo(run_id=record.run_id, recipe=recipe, run_dir=path, launcher=launcher_name,
                   stages=tuple(s.name for s in plan.topological()))
    app.hooks.run_started(info)
    executor = Executor(plan=plan, run=info, rundir=rundir, status=status, launcher=launcher,
                        cache=Cache(app.settings.cache_dir), policy=policy, hooks=app.hooks,
                        options=options, progress=progress)
    executor.seed(kept, previous.attempts, previous.oom_kills)
    try:
        return drive(app, executor, info, status, launcher, sinks=sinks)
    finally:
        drop_private_ledger(policy)


def cancel_run(app: App, ref: str, *, wait: float = 30.0) -> str:
    """Cancel run ``ref``; returns its state afterwards."""
    path = find_run(app.settings.runs_dir, ref)
    record = load_run(path)
    if record.state == "running":
        driver = _read(path / "driver.json")
        pid = driver.get("pid")
        if not isinstance(pid, int):
            raise ConfigError(f"run {record.run_id}: driver.json names no process",
                              hint="the run directory is damaged")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            state = load_run(path).state
            if state != "running":
                return state
            time.sleep(0.1)
        return "running"
    if record.state == "damaged":
        raise _refuse_damaged(record, "cancelled")
    if record.state == "interrupted":
        _, plan = load_plan(path)
        orphans = previous_state(path, plan).orphans
        kill_orphans(record.run_id, orphans)
        _cancel_remote_of(app, path, record.run_id)
        status = StatusLog(path / STATUS)
        status.append("run_finished", outcome="cancelled", wall=None,
                      reason="cancelled after its driver had stopped")
        status.close()
        return "cancelled"
    raise ConfigError(f"run {record.run_id} is not running (it is {record.state})",
                      hint="only running or interrupted runs can be cancelled")


def cancel_remote_jobs(launcher: Launcher, run_id: str) -> list[str]:
    """Cancel the jobs of run ``run_id`` its launcher still knows (a cluster's outlive a dead
    driver; a local launcher's died with it and none are found); return their ids."""
    found = launcher.find_jobs(run_id)
    for handle in found:
        launcher.cancel(handle)
    return [h.job_id for h in found]


def _cancel_remote_of(app: App, path: Path, run_id: str) -> None:
    """For ``blut cancel`` of a run whose driver is gone: its remote launcher's jobs."""
    from blut_core.run.orchestrate import make_launcher

    name = str(_read(path / "provenance.json").get("launcher") or "local")
    if name == "local":
        return
    launcher = make_launcher(app, name)
    try:
        cancel_remote_jobs(launcher, run_id)
    finally:
        launcher.close()


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
