"""``blut schedule install|list|remove|fire``: run recipes on a calendar.

Entry point ``cli-schedule``. ``install`` checks everything first (the recipe and its
params, the name, the calendar, the backend) and writes nothing when any of it is wrong;
the backend (``blut_schedulers``: systemd timers, cron) then installs an entry that runs
``blut schedule fire NAME``. A firing runs the recipe as ``blut run`` would, through
admission; it never overlaps itself (a lock per schedule: a firing that finds the previous
one still running is skipped and logged) and records the schedule's name in the run's status
stream (``run_scheduled``) and the run in the schedule's history.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blut_core import ConfigError, hookimpl
from blut_core.cli import echo_json, json_option, recipe_options, table

if TYPE_CHECKING:
    from blut_core import App, RunInfo
    from blut_plugins.schedule.model import Backend, Store


def backends(app: App) -> dict[str, Backend]:
    """Every installed schedule backend, in ascending priority."""
    specs = sorted((p.item for p in app.registry.schedulers.values()), key=lambda s: s.priority)
    return {s.name: s.factory() for s in specs}


def pick(app: App, name: str | None) -> Backend:
    """The backend named ``name``, else the first usable one; a one-line error otherwise."""
    if name is not None:
        backend: Backend = app.registry.require("schedulers", name).factory()
        reason = backend.unusable_reason()
        if reason:
            raise ConfigError(f"schedule backend {name!r} cannot be used here: {reason}",
                              hint=_others(app, name))
        return backend
    found = backends(app)
    for backend in found.values():
        if backend.unusable_reason() is None:
            return backend
    reasons = "; ".join(f"{n}: {b.unusable_reason()}" for n, b in found.items()) or "none installed"
    raise ConfigError(f"no schedule backend can be used here ({reasons})",
                      hint="install cron (Debian: apt-get install cron) or run under systemd")


def _others(app: App, name: str) -> str:
    usable = [n for n, b in backends(app).items() if n != name and b.unusable_reason() is None]
    return f"use --backend {usable[0]}" if usable else "no other backend is usable here either"


@click.group(name="schedule")
def schedule_group() -> None:
    """Run recipes on a calendar (systemd timers or cron lines that fire `blut run`)."""


@schedule_group.command(name="install")
@click.argument("recipe")
@recipe_options
@click.option("--calendar", metavar="EXPR",
              help="When to run: daily, hourly, a systemd calendar or five cron fields "
                   "(default: the recipe's own calendar).")
@click.option("--name", metavar="NAME", help="The schedule's name (default: COOKBOOK-RECIPE).")
@click.option("--backend", metavar="NAME", help="systemd or cron (default: the first usable).")
@click.option("--replace", is_flag=True, help="Replace a schedule of the same name.")
@json_option
@click.pass_obj
def install_command(app: App, recipe: str, params_file: Path | None, overrides: tuple[str, ...],
                    calendar: str | None, name: str | None, backend: str | None, replace: bool,
                    as_json: bool) -> None:
    """Install a schedule that runs RECIPE (with these params) on a calendar."""
    from blut_core.run import prepare
    from blut_plugins.schedule.model import (
        Entry,
        Store,
        blut_executable,
        carried_environment,
        check_name,
        default_name,
    )

    prepared = prepare(app, recipe, params_file=params_file, overrides=overrides)
    qualname = prepared.ref.qualname
    name = check_name(name if name is not None else default_name(qualname))
    given = calendar if calendar is not None else prepared.ref.recipe.calendar
    if given is None:
        raise ConfigError(f"recipe {qualname} declares no calendar",
                          hint="pass --calendar, e.g. --calendar daily or --calendar '*/15 * * * *'")
    chosen = pick(app, backend)
    native = chosen.calendar(given)
    home = app.settings.home
    store = Store(home)
    old = store.load(name)
    if old is not None and not replace:
        raise ConfigError(f"schedule {name} already exists ({old.get('recipe')}, "
                          f"{old.get('calendar')!r}, {old.get('backend')})",
                          hint=f"pass --replace, or `blut schedule remove {name}` first")
    if old is not None and old.get("backend") != chosen.name:
        raise ConfigError(f"schedule {name} is installed with {old.get('backend')}, not {chosen.name}",
                          hint=f"`blut schedule remove {name}` first")
    elsewhere = chosen.installed().get(name)
    if elsewhere is not None and elsewhere.home != str(home.resolve()):
        raise ConfigError(f"schedule {name} is installed for BLUT_HOME={elsewhere.home}",
                          hint="choose another --name, or remove it with that BLUT_HOME")
    argv = (*blut_executable(), "schedule", "fire", name)
    env = carried_environment(home, app.settings.environ)
    definition: dict[str, Any] = {
        "name": name, "recipe": qualname, "calendar": given, "native_calendar": native,
        "backend": chosen.name, "argv": list(argv), "created": time.time(), "env": env}
    entry = Entry(name=name, recipe=qualname, calendar=native, argv=argv,
                  env={"BLUT_HOME": env["BLUT_HOME"]}, log=store.path(name, ".log"))
    _save(store, definition, prepared.params_data)
    try:
        written = chosen.install(entry, replace=replace or elsewhere is not None)
    except BaseException:
        _restore(store, name, old)
        raise
    store.record(name, "installed", recipe=qualname, calendar=given, backend=chosen.name)
    if as_json:
        echo_json({**definition, "installed": written})
        return
    click.echo(f"installed schedule {name}: {qualname} on {given!r} ({chosen.name})")
    for what in written:
        click.echo(f"  {what}")


def _save(store: Store, definition: dict[str, Any], params: dict[str, Any]) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    params_path = store.path(definition["name"], ".params.json")
    params_path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    store.save(definition)


def _restore(store: Store, name: str, old: dict[str, Any] | None) -> None:
    """Put the definition back as it was before a failed install."""
    if old is None:
        store.delete(name)
        store.path(name, ".params.json").unlink(missing_ok=True)
    else:
        store.save(old)


@schedule_group.command(name="list")
@json_option
@click.pass_obj
def list_command(app: App, as_json: bool) -> None:
    """Schedules of this BLUT_HOME: recipe, calendar, backend, last firing and its run."""
    from blut_plugins.schedule.model import Store, last

    store = Store(app.settings.home)
    home = str(app.settings.home.resolve())
    found = {}
    for backend in backends(app).values():
        try:
            found.update({n: i for n, i in backend.installed().items() if i.home == home})
        except ConfigError:
            continue
    rows: list[dict[str, Any]] = []
    for name in sorted(set(store.names()) | set(found)):
        d = store.load(name) or {}
        history = store.history(name)
        fired = last(history, "finished", "skipped", "failed", "started")
        run = last(history, "started", "finished")
        state = ("installed" if name in found else "missing") if d else "orphan"
        rows.append({"name": name, "recipe": d.get("recipe"), "calendar": d.get("calendar"),
                     "backend": d.get("backend") or (found[name].backend if name in found else None),
                     "state": state, "where": found[name].where if name in found else None,
                     "last": dict(fired) if fired else None,
                     "last_run": run.get("run_id") if run else None, "history": history[-10:]})
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no schedules: `blut schedule install RECIPE --calendar daily` adds one")
        return
    table([(r["name"], r["recipe"] or "-", r["calendar"] or "-", r["backend"] or "-", r["state"],
            _last(r["last"]), r["last_run"] or "-") for r in rows],
          ["NAME", "RECIPE", "CALENDAR", "BACKEND", "STATE", "LAST", "RUN"])


def _last(event: dict[str, Any] | None) -> str:
    if not event:
        return "never fired"
    what = event.get("outcome") or event.get("event")
    return f"{what} {time.strftime('%Y-%m-%d %H:%M', time.localtime(event.get('t', 0)))}"


@schedule_group.command(name="remove")
@click.argument("name")
@click.pass_obj
def remove_command(app: App, name: str) -> None:
    """Remove schedule NAME: its timer or crontab line, and its definition."""
    from blut_plugins.schedule.model import Store, check_name

    check_name(name)
    store = Store(app.settings.home)
    d = store.load(name)
    home = str(app.settings.home.resolve())
    where = {n: b for n, b in backends(app).items() if name in _installed(b)}
    if d is None and not where:
        raise ConfigError(f"no schedule named {name!r}", hint="see `blut schedule list`")
    for backend in where.values():
        installed = backend.installed()[name]
        if installed.home not in (None, home):
            raise ConfigError(f"schedule {name} belongs to BLUT_HOME={installed.home}",
                              hint="remove it with that BLUT_HOME")
    removed = []
    for backend in where.values():
        removed += backend.remove(name)
    store.delete(name)
    store.path(name, ".params.json").unlink(missing_ok=True)
    store.record(name, "removed")
    click.echo(f"removed schedule {name}" + (f" ({', '.join(removed)})" if removed else
                                              " (its timer or crontab line was already gone)"))


def _installed(backend: Backend) -> set[str]:
    try:
        return set(backend.installed())
    except ConfigError:
        return set()


@schedule_group.command(name="fire")
@click.argument("name")
@click.pass_context
def fire_command(ctx: click.Context, name: str) -> None:
    """Run schedule NAME now, as its timer does (skipped while its previous firing runs)."""
    from blut_plugins.schedule.fire import fire

    ctx.exit(fire(ctx.obj, name))


class Firing:
    """A plugin registered for one firing (:mod:`blut_plugins.schedule.fire`): marks the run
    it starts as this schedule's, in the run's status stream and the schedule's history."""

    def __init__(self, store: Store, name: str, definition: dict[str, Any]) -> None:
        self.store = store
        self.name = name
        self.definition = definition

    @hookimpl
    def blut_run_started(self, run: RunInfo) -> None:
        from blut_core.store import STATUS

        record = {"event": "run_scheduled", "t": round(time.time(), 6), "schedule": self.name,
                  "backend": self.definition.get("backend"),
                  "calendar": self.definition.get("calendar")}
        fd = os.open(run.run_dir / STATUS, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)
        self.store.record(self.name, "started", run_id=run.run_id, pid=os.getpid())


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield schedule_group
