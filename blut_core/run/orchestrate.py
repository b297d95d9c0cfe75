"""From a recipe name and params to a finished run.

:func:`prepare` does everything that can fail on bad input (recipe lookup, params, plan
validation, launcher choice) before anything is written, so a bad command line never leaves
a run directory behind. :func:`start_run` creates the run directory, whole or not at all
(a driver killed during set-up leaves no run), and drives the executor.
"""

from __future__ import annotations

import inspect
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.errors import BlutError, ConfigError, PluginError
from blut_core.host.interfaces import Launcher
from blut_core.lineage.ingest import Checked, check_sinks, ingest
from blut_core.model.convert import apply_overrides, read_params_file, structure, unstructure
from blut_core.model.outcome import RunInfo, RunSummary, StageState
from blut_core.model.reprs import record_repr
from blut_core.process.spec import prepare_launcher
from blut_core.run.executor import ExecOptions, Executor
from blut_core.run.scheduling import BoundedPolicy, SchedulingPolicy
from blut_core.store.cache import Cache, CacheEntry
from blut_core.store.rundir import (
    RunDir,
    StatusLog,
    ensure_space,
    ensure_writable,
    new_run_id,
    sweep_setups,
    write_json_atomic,
)

if TYPE_CHECKING:
    from blut_core.broker.machine import Probe
    from blut_core.host.app import App
    from blut_core.host.cookbooks import RecipeRef
    from blut_core.model.capacity import Capacity
    from blut_core.model.plan import Plan
    from blut_core.run.progress import ProgressSink
    from blut_core.run.provenance import Gathering
    from blut_core.run.service import Broker


@attrs.frozen(kw_only=True)
class Prepared:
    """A recipe resolved, its params structured and its plan validated."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    ref: RecipeRef
    params: Any
    plan: Plan

    @property
    def params_data(self) -> dict[str, Any]:
        data: dict[str, Any] = unstructure(self.params)
        return data


def prepare(app: App, recipe: str, *, params_file: Path | None = None,
            overrides: Sequence[str] = ()) -> Prepared:
    """Resolve ``recipe``, structure its params and build and validate its plan."""
    from blut_core.model.plan import Plan

    ref = app.cookbooks.find(recipe)
    given: dict[str, Any] = read_params_file(params_file) if params_file else {}
    data = apply_overrides(given, list(overrides))
    params = structure(data, ref.recipe.params, where=f"params for {ref.qualname}",
                       hint=f"see `blut recipes show {ref.qualname}` for fields and types")
    try:
        plan = ref.recipe.build(params)
    except BlutError:
        raise
    except Exception as exc:  # the recipe's own code failed on these params
        raise _build_failed(ref.qualname, data, exc) from exc
    if not isinstance(plan, Plan):
        raise PluginError(f"recipe {ref.qualname}: build() returned {type(plan).__name__}, "
                          "not a Plan", hint="a recipe's build function must return Plan.of(...)")
    plan.validate()
    return Prepared(ref=ref, params=params, plan=plan)


def _build_failed(qualname: str, given: dict[str, Any], exc: Exception) -> ConfigError:
    """One line for a recipe whose ``build()`` raised: the recipe, the params given (those
    whose value the error repeats, else all of them) and the error itself."""
    error = " ".join(f"{type(exc).__name__}: {exc}".split())
    error = error if len(error) <= 200 else error[:197] + "..."
    flat = _flatten(given)
    named = {k: v for k, v in flat.items() if _mentions(error, v)} or flat
    shown = ", ".join(f"{k}={_shown(v)}" for k, v in list(named.items())[:4])
    shown += ", ..." if len(named) > 4 else ""
    with_ = f"with {shown}" if named else "with its default params"
    check = f"the value of {', '.join(list(named)[:4])}" if named else "the recipe's defaults"
    return ConfigError(f"recipe {qualname} cannot build its plan {with_}: {error}",
                       hint=f"check {check} (see `blut recipes show {qualname}`); "
                            "-v shows where the recipe failed")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _mentions(error: str, value: Any) -> bool:
    text = str(value)
    return repr(value) in error or (len(text) >= 3 and text in error)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


#: Room a run's set-up needs on the file system of its runs directory (plan, params,
#: provenance, the first status lines), and room per stage (contexts, status lines, logs).
SETUP_BYTES = 64 << 10
STAGE_BYTES = 4 << 10


def check_paths(app: App, broker: Broker | None = None, *, stages: int = 0) -> None:
    """Check every place a run writes outside its stages before anything is written:
    ``BLUT_HOME`` and its runs and cache directories, the calibration store, the machine's
    booking ledger (``BLUT_LEDGER``), and room for the run's set-up. A place that is a file
    where a directory belongs (or the reverse), cannot be written or is full raises a
    one-line :class:`ConfigError` naming it, so no half-made run is left behind."""
    from blut_core.run.service import Broker

    settings = app.settings
    broker = broker or Broker(app)
    ensure_writable(settings.home)
    ensure_writable(settings.runs_dir, what="runs directory")
    ensure_writable(settings.cache_dir, what="cache directory")
    broker.store.check()
    broker.ledger.check()
    ensure_space(settings.runs_dir, SETUP_BYTES + STAGE_BYTES * stages, what="a new run's set-up")


#: launchers blut knows of that live in their own distributions
LAUNCHER_DISTRIBUTIONS = {"slurm": "blut-launcher-slurm", "ray": "blut-launcher-ray"}


def make_launcher(app: App, name: str, containment: Any = None) -> Launcher:
    """The launcher ``name`` with its settings (``[launcher.NAME]``), checked before any write:
    an unknown name lists the installed launchers (and names the distribution for slurm and
    ray), a bad setting is one line naming it."""
    spec, options = launcher_settings(app, name)
    launcher: Launcher = spec.factory(options, containment)
    return launcher


def launcher_settings(app: App, name: str) -> tuple[Any, Any]:
    """The spec of launcher ``name`` and its settings, checked (see :func:`make_launcher`)."""
    try:
        spec = app.registry.require("launchers", name)
    except PluginError as exc:
        dist = LAUNCHER_DISTRIBUTIONS.get(name)
        if dist is None:
            raise
        raise PluginError(exc.message, hint=f"pip install {dist}; {exc.hint}") from None
    options = None
    if spec.settings is not None:
        table = app.settings.launcher_options(name)
        try:
            from_mapping = getattr(spec.settings, "from_mapping", None)
            options = from_mapping(table) if from_mapping else spec.settings(**table)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[launcher.{name}]: {exc}",
                              hint="see `blut config show` and docs/distributed.md") from None
    return spec, options


@contextmanager
def _signals_cancel(executor: Executor) -> Iterator[None]:
    """Ctrl-C, SIGTERM (``blut cancel``) and SIGHUP cancel the run at a safe point."""
    names = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "cancelled (SIGTERM)",
             signal.SIGHUP: "cancelled (terminal closed)"}

    def handler(signum: int, frame: Any) -> None:
        executor.request_cancel(names.get(signal.Signals(signum), "cancelled"))

    old = {s: signal.signal(s, handler) for s in names}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def start_run(app: App, prepared: Prepared, *, launcher: str = "local",
              options: ExecOptions | None = None,
              policy: SchedulingPolicy | None = None,
              no_calibration: bool = False,
              progress: ProgressSink | None = None,
              on_broker: Callable[[Broker], None] | None = None) -> RunSummary:
    """Create the run directory, run the plan, and return the summary.

    Without an explicit ``policy`` the memory broker schedules the run: every declaration
    is checked and a stage that can never fit this box refuses the whole run
    (:class:`AdmissionRefused`, exit 3) before anything is written or started.
    ``on_broker`` is called with the run's broker once it is built, before
    anything runs (``blut run`` warns there when no memory containment is usable); a run
    with every stage cached builds none, and does not call it.
    """
    from blut_core.run import provenance

    # git status runs while the broker and the launcher are set up, the set-up collects it
    gathering = provenance.start(_recipe_source(prepared))
    try:
        return _start(app, prepared, gathering, launcher=launcher, options=options, policy=policy,
                      no_calibration=no_calibration, progress=progress,
                      on_broker=on_broker)
    finally:
        gathering.close()


def _start(app: App, prepared: Prepared, gathering: Gathering, *, launcher: str,
           options: ExecOptions | None, policy: SchedulingPolicy | None, no_calibration: bool,
           progress: ProgressSink | None,
           on_broker: Callable[[Broker], None] | None) -> RunSummary:
    from blut_core.run.service import Broker

    settings = app.settings
    sinks = check_sinks(app)          # a bad BLUT_LINEAGE_SINKS stops here, nothing written
    runs_root = settings.runs_dir
    hits = _all_cached(app, prepared.plan, options) if policy is None else None
    if hits is not None:
        return _up_to_date(app, prepared, launcher, hits, options=options, progress=progress,
                           sinks=sinks, gathering=gathering)
    broker = Broker(app, no_calibration=no_calibration)
    if on_broker is not None:
        on_broker(broker)
    check_paths(app, broker, stages=len(prepared.plan))  # a bad place stops here too
    the_launcher = make_launcher(app, launcher, broker.selection.containment)
    plan = prepared.plan
    prepare_launcher(the_launcher, plan.topological())  # starts while the run is set up
    try:
        capacity = the_launcher.capacity() if policy is None else None
        if capacity is not None:  # a remote launcher: its memory, never this box's or its ledger
            policy = remote_policy(app, broker, capacity, prepared.ref.qualname, plan, options)
        elif policy is None:
            broker.preflight(plan, prepared.ref.qualname,
                             skip=lambda: _cached_stages(app, plan, options))
            policy = broker.policy(prepared.ref.qualname,
                                   max_parallel=options.jobs if options else None)
        if broker.selection.warning:
            from blut_core.host.log import get_logger

            get_logger().warning("containment_bare", message=broker.selection.warning)
        cache = Cache(settings.cache_dir)
        rundir, status, info = _set_up(app, prepared, runs_root, launcher, gathering)
        app.hooks.run_started(info)
        executor = Executor(plan=plan, run=info, rundir=rundir, status=status,
                            launcher=the_launcher, cache=cache,
                            policy=policy or BoundedPolicy(1), hooks=app.hooks, options=options,
                            progress=progress)
    except BaseException:
        the_launcher.close()
        raise
    try:
        return drive(app, executor, info, status, the_launcher, sinks=sinks)
    finally:
        if capacity is not None:
            drop_private_ledger(policy)


def drop_private_ledger(policy: SchedulingPolicy | None) -> None:
    """Remove the ledger of a remote run's own (:func:`remote_policy`) once it has ended."""
    private = getattr(getattr(policy, "ledger", None), "path", None)
    if private is not None and private.parent.name.startswith("blut-remote-"):
        shutil.rmtree(private.parent, ignore_errors=True)


def _all_cached(app: App, plan: Plan, options: ExecOptions | None) -> dict[str, CacheEntry] | None:
    """The cache entries of ``plan``'s stages (by key) when every one is a hit, so that
    nothing would run; else ``None``."""
    from blut_core.run.planning import CacheState, cache_states

    if (options is not None and options.no_cache) or not all(s.cache for s in plan.topological()):
        return None
    entries: dict[str, CacheEntry] = {}
    states = cache_states(plan, Cache(app.settings.cache_dir), entries=entries, until_miss=True)
    if any(st.state is not CacheState.CACHED for st in states.values()):
        return None
    return entries


class _NothingRuns(Launcher):
    """The launcher of a run whose every stage is cached: it is never asked to start one."""

    def __init__(self, name: str) -> None:
        self.name = name

    def submit(self, job: Any) -> Any:
        raise PluginError(f"stage {job.stage!r}: its cached result vanished while the run "
                          "started (another process collected the cache)",
                          hint="run the recipe again; it will rebuild what is missing")

    def poll(self, handle: Any) -> Any:
        raise PluginError(f"launcher {self.name}: no job was started", hint="a bug in blut")

    def cancel(self, handle: Any) -> None:
        return None


def _up_to_date(app: App, prepared: Prepared, launcher: str, hits: dict[str, CacheEntry], *,
                options: ExecOptions | None, progress: ProgressSink | None,
                sinks: Checked, gathering: Gathering) -> RunSummary:
    """A run with every stage cached: recorded like any run (run directory, status stream,
    outputs materialised from the cache, lineage), without the machinery a stage needs —
    no memory broker, ledger or calibration, no fork server, no launcher started. The
    launcher's name and settings are still checked, as for any run."""
    settings = app.settings
    launcher_settings(app, launcher)
    ensure_writable(settings.home)
    ensure_writable(settings.runs_dir, what="runs directory")
    ensure_writable(settings.cache_dir, what="cache directory")
    ensure_space(settings.runs_dir, SETUP_BYTES + STAGE_BYTES * len(prepared.plan),
                 what="a new run's set-up")
    rundir, status, info = _set_up(app, prepared, settings.runs_dir, launcher, gathering)
    app.hooks.run_started(info)
    nothing = _NothingRuns(launcher)
    executor = Executor(plan=prepared.plan, run=info, rundir=rundir, status=status,
                        launcher=nothing, cache=Cache(settings.cache_dir),
                        policy=BoundedPolicy(1), hooks=app.hooks, options=options,
                        progress=progress, cache_hits=hits)
    return drive(app, executor, info, status, nothing, sinks=sinks)


def capacity_probe(capacity: Capacity) -> Probe:
    """A remote launcher's capacity as the broker's probe: the largest job it accepts is the
    "box" (what one stage can ever get), all its nodes' memory what can be given out."""
    from blut_core.broker.machine import Probe

    return Probe(mem_total=capacity.memory_bytes, mem_available=capacity.memory_bytes,
                 cpus=max(1, int(sum(n.cpus for n in capacity.nodes))),
                 cgroup_limit=capacity.max_job_memory, taken=time.time())


def remote_policy(app: App, broker: Broker, capacity: Capacity, recipe: str, plan: Plan,
                  options: ExecOptions | None, *, skip: frozenset[str] = frozenset()
                  ) -> SchedulingPolicy:
    """The memory policy of a run on a remote launcher: preflight, right-sizing and waiting
    against ``capacity``, bookings in a ledger of the run's own (nothing in this machine's).

    A stage that can never fit the largest job the launcher accepts refuses the run (exit 3)
    before anything is written; stages wait while the run's running jobs fill the capacity.
    Stages in ``skip`` (kept by ``blut resume``) and cached ones are never refused. Its
    private ledger is removed by :func:`drop_private_ledger` when the run ends.
    """
    import tempfile

    from blut_core.broker.ledger import Ledger
    from blut_core.errors import AdmissionRefused
    from blut_core.run.policy import MemoryPolicy, decide_stage

    snap = capacity_probe(capacity)
    estimator = broker.estimator(recipe)
    empty = attrs.evolve(snap, mem_available=snap.box)
    refused: dict[str, str] = {}
    for stage in plan.topological():
        if stage.name in skip:
            continue
        estimator.check(stage)
        adm, _ = decide_stage(estimator, stage, empty, 0, broker.config)
        if adm.decision == "refuse":  # the broker's words are about a box: here, the largest job
            refused[stage.name] = adm.reason.replace("this box", "the launcher's largest job") \
                .replace(" box ", " job ")
    if refused:
        for name in _cached_stages(app, plan, options):
            refused.pop(name, None)
    if refused:
        reasons = list(refused.values())
        raise AdmissionRefused(
            reasons[0] if len(reasons) == 1 else f"{len(reasons)} stages can never fit the launcher's "
                                                 "largest job",
            details=reasons if len(reasons) > 1 else (),
            hint=f"the launcher's largest job is {capacity.max_job_memory} bytes; lower the stage's "
                 "drivers or ask for a bigger partition")
    ledger = Ledger(Path(tempfile.mkdtemp(prefix="blut-remote-")) / "ledger")
    jobs = options.jobs if options and options.jobs else min(capacity.max_jobs, snap.cpus)
    return MemoryPolicy(estimator=estimator, ledger=ledger, config=broker.config,
                        containment=broker.selection.containment.name, learn=True,
                        probe_fn=lambda: attrs.evolve(snap, taken=time.time()), max_parallel=jobs)


def _set_up(app: App, prepared: Prepared, runs_root: Path, launcher: str, gathering: Gathering
            ) -> tuple[RunDir, StatusLog, RunInfo]:
    """Create the run directory whole or not at all.

    It is written under ``runs/.setup/`` (plan, params, provenance, driver, the
    ``run_started`` event) and renamed into ``runs/`` in one step, so a driver killed at
    any instant leaves either no run or one that ``runs list`` shows and ``resume`` and
    ``cancel`` act on; a set-up that fails (a full disk) leaves nothing behind.
    """
    sweep_setups(runs_root)
    plan = prepared.plan
    run_id = new_run_id(prepared.ref.qualname)
    provenance = _provenance(app, prepared, launcher, gathering)  # the slow part, before any write
    info = RunInfo(run_id=run_id, recipe=prepared.ref.qualname, run_dir=runs_root / run_id,
                   launcher=launcher, stages=tuple(s.name for s in plan.topological()))
    pause = _setup_pause()
    rundir = RunDir.begin(runs_root, run_id)
    status: StatusLog | None = None
    try:
        pause()
        write_json_atomic(rundir.path / "plan.json", {"recipe": prepared.ref.qualname,
                                                      "stages": plan.to_json()})
        pause()
        write_json_atomic(rundir.path / "params.json", prepared.params_data)
        pause()
        write_json_atomic(rundir.path / "provenance.json", provenance)
        pause()
        status = StatusLog(rundir.status_path)
        status.append("run_started", run_id=run_id, recipe=info.recipe, launcher=launcher,
                      stages=list(info.stages))
        pause()
        rundir.publish(runs_root)
        pause()
    except BaseException:
        if status is not None:
            status.close()
        shutil.rmtree(rundir.path, ignore_errors=True)
        raise
    status.path = rundir.status_path  # the same open file, now under its published name
    return rundir, status, info


def _setup_pause() -> Callable[[], None]:
    """``BLUT_TEST_SETUP_PAUSE=SECONDS`` (for tests): sleep after each step of the set-up, so
    that a test can kill the driver at every one of them."""
    try:
        seconds = float(os.environ.get("BLUT_TEST_SETUP_PAUSE") or 0)
    except ValueError:
        seconds = 0.0
    return (lambda: time.sleep(seconds)) if seconds > 0 else (lambda: None)


def drive(app: App, executor: Executor, info: RunInfo, status: StatusLog,
          launcher: Launcher, *, sinks: Checked) -> RunSummary:
    """Run ``executor`` to the end, close the status stream, feed the lineage ``sinks``
    (from :func:`check_sinks`; never fails the run), then notify plugins."""
    try:
        with _signals_cancel(executor):
            summary = executor.execute()
    finally:
        launcher.close()
    status.append("run_finished", outcome=summary.outcome, wall=round(summary.wall, 6),
                  counts={s.value: summary.count(s) for s in StageState if summary.count(s)})
    status.close()
    ingest(app, info.run_dir, sinks)
    app.hooks.run_finished(info, summary)
    return summary


def _cached_stages(app: App, plan: Plan, options: ExecOptions | None) -> set[str]:
    """Stages a run would skip as cached (they need no memory)."""
    from blut_core.run.planning import CacheState, cache_states

    states = cache_states(plan, Cache(app.settings.cache_dir),
                          no_cache=bool(options and options.no_cache))
    return {name for name, st in states.items() if st.state is CacheState.CACHED}


def _recipe_source(prepared: Prepared) -> Path | None:
    """The file that defines the recipe's plan builder (its git state is recorded)."""
    try:
        source = inspect.getsourcefile(prepared.ref.recipe.build)
    except TypeError:
        source = None
    return Path(source) if source else None


def _provenance(app: App, prepared: Prepared, launcher: str, gathering: Gathering
                ) -> dict[str, Any]:
    plugins = [{"name": r.name, "distribution": r.distribution, "version": r.version,
                "state": r.state} for r in app.pm.records]
    plugins += [{"name": f"cookbook:{r.name}", "distribution": r.distribution,
                 "version": r.version, "state": r.state} for r in app.cookbooks.records]
    data = gathering.finish(plugins)
    data.update(recipe=prepared.ref.qualname, launcher=launcher, created=time.time())
    return data
