"""One firing of a schedule: what ``blut schedule fire NAME`` does when its timer goes off.

1. Read the definition; if this process's environment differs from the one the schedule
   was installed with (cron and systemd start with almost none), start again with it.
2. Take the schedule's lock without waiting: when the previous firing still holds it, log
   ``schedule_skipped`` (stderr and the schedule's history) and stop, exit code 0.
3. Run the recipe with the stored params exactly as ``blut run`` does (admission, caps,
   retries, lineage), printing progress lines; the run's status stream gets a
   ``run_scheduled`` event naming the schedule, and the schedule's history the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING, Any

from blut_core import BlutError, ConfigError

if TYPE_CHECKING:
    from blut_core import App
    from blut_plugins.schedule.model import Store

#: Set when ``fire`` started itself again with the schedule's environment (never twice).
REEXEC = "BLUT_SCHEDULE_REEXEC"
EXIT_CODES = {"ok": 0, "failed": 1, "refused": 3, "cancelled": 130}


def _reexec_if_needed(definition: dict[str, Any]) -> None:
    env = definition.get("env")
    argv = definition.get("argv")
    if not isinstance(env, dict) or not isinstance(argv, list) or not argv:
        return
    if os.environ.get(REEXEC) or all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.execve(argv[0], [str(a) for a in argv], {**os.environ, **env, REEXEC: "1"})


def fire(app: App, name: str) -> int:
    """Fire schedule ``name`` in this process; the exit code of the run (0 when skipped)."""
    from blut_core.host import get_logger
    from blut_plugins.schedule.model import Store, check_name

    log = get_logger()
    check_name(name)
    store = Store(app.settings.home)
    definition = store.load(name)
    if definition is None:
        raise ConfigError(f"no schedule named {name!r} under {store.root}",
                          hint="see `blut schedule list`; the timer or crontab line may be "
                               "left over: `blut schedule remove NAME`")
    _reexec_if_needed(definition)
    store.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(store.path(name, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            reason = f"the previous firing (pid {holder}) is still running"
            log.warning("schedule_skipped", schedule=name, reason=reason)
            store.record(name, "skipped", reason=reason, holder=holder)
            return 0
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return _run(app, store, name, definition)
    finally:
        os.close(fd)


def _run(app: App, store: Store, name: str, definition: dict[str, Any]) -> int:
    import click

    from blut_core.run import prepare, sink_for, start_run
    from blut_plugins.schedule.commands import Firing

    store.record(name, "fired", pid=os.getpid())
    app.pm.register(Firing(store, name, definition), name=f"schedule-firing-{name}")
    try:
        prepared = prepare(app, str(definition.get("recipe")),
                           params_file=store.path(name, ".params.json"))
        summary = start_run(app, prepared, progress=sink_for(False))
    except BlutError as err:
        store.record(name, "failed", error=err.message)
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):
            store.record(name, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    store.record(name, "finished", run_id=summary.run_id, outcome=summary.outcome,
                 wall=round(summary.wall, 3))
    click.echo(f"schedule {name}: run {summary.run_id} {summary.outcome} in {summary.wall:.2f}s")
    return EXIT_CODES.get(summary.outcome, 1)
