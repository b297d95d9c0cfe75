"""``blut broker``: the machine's memory, stage footprints, calibration and bookings.

Entry point ``cli-broker``. Every command is read-only except ``calibration forget``, and
every one has ``--json``.

Imported when the command is used: :mod:`blut_plugins.cli.broker` registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from blut_core.cli import complete_recipes, echo_json, json_option, recipe_options, table

if TYPE_CHECKING:
    from blut_core import App


def _size(n: int | None) -> str:
    from blut_core import format_size

    return format_size(n)


@click.group(name="broker")
def broker_group() -> None:
    """Memory admission: probe, estimates, calibration, bookings."""


@broker_group.command(name="probe")
@json_option
@click.pass_obj
def probe_command(app: App, as_json: bool) -> None:
    """Show this box's memory now: RAM, available, swap, CPUs, blut's cgroup limit."""
    from blut_core import Broker

    broker = Broker(app)
    snap = broker.probe()
    floor = broker.config.floor_for(snap.box)
    data = snap.to_json()
    data["floor_bytes"] = floor
    data["containment"] = broker.selection.name
    if as_json:
        echo_json(data)
        return
    limit = snap.cgroup_limit
    rows = [
        ("box", _size(snap.box), "the most stages can ever get (RAM or blut's cgroup limit)"),
        ("available", _size(snap.available), "MemAvailable (and the cgroup's room)"),
        ("floor", _size(floor), "always left free"),
        ("ram", _size(snap.mem_total), "MemTotal"),
        ("swap", f"{_size(snap.swap_free)} free of {_size(snap.swap_total)}", ""),
        ("cpus", str(snap.cpus), ""),
        ("cgroup", f"v{snap.cgroup_version} {snap.cgroup_path}" if snap.cgroup_version else "-",
         f"limit {_size(limit)}" if limit is not None else "no limit"),
        ("containment", broker.selection.name, "" if broker.selection.containment.enforces
         else "NO MEMORY CAP"),
    ]
    table(rows, ["WHAT", "VALUE", "NOTE"])


@broker_group.command(name="backends")
@json_option
@click.pass_obj
def backends_command(app: App, as_json: bool) -> None:
    """Probe every containment backend, in the order they are tried."""
    from blut_core.broker import probe_all

    found = probe_all(app.registry)
    if as_json:
        echo_json([b.to_json() for b in found])
        return
    table([(b.name, b.priority, "usable" if b.reason is None else "no", b.reason or b.summary)
           for b in found], ["BACKEND", "PRIORITY", "USABLE", "WHY"])


@broker_group.command(name="estimate")
@click.argument("recipe", shell_complete=complete_recipes)
@recipe_options
@click.option("--no-calibration", is_flag=True, help="Ignore measured peaks and OOM bounds.")
@json_option
@click.pass_obj
def estimate_command(app: App, recipe: str, params_file: Path | None, overrides: tuple[str, ...],
                     no_calibration: bool, as_json: bool) -> None:
    """Per stage of RECIPE: drivers → footprint → calibrated → cap → admission decision."""
    from blut_core import Broker
    from blut_core.run import prepare

    prepared = prepare(app, recipe, params_file=params_file, overrides=overrides)
    broker = Broker(app, no_calibration=no_calibration)
    snap = broker.probe()
    rows = broker.estimates(prepared.plan, prepared.ref.qualname, snap=snap)
    if as_json:
        echo_json({"recipe": prepared.ref.qualname, "box_bytes": snap.box,
                   "available_bytes": snap.available,
                   "floor_bytes": broker.config.floor_for(snap.box),
                   "containment": broker.selection.name,
                   "stages": [r.to_json() for r in rows]})
        return
    click.echo(f"{prepared.ref.qualname}: box {_size(snap.box)}, available {_size(snap.available)}, "
               f"floor {_size(broker.config.floor_for(snap.box))}, "
               f"containment {broker.selection.name}")
    table([(r.stage, ", ".join(f"{k}={v}" for k, v in r.drivers.items()) or "-",
            _size(r.model_bytes) + ("" if r.declared else " (default!)"),
            f"{_size(r.calibrated_bytes)} ({r.source})" if r.calibrated_bytes else r.source,
            _size(r.cap), r.decision, r.reason) for r in rows],
          ["STAGE", "DRIVERS", "FOOTPRINT", "CALIBRATED", "CAP", "DECISION", "REASON"])


@broker_group.group(name="calibration")
def calibration_group() -> None:
    """Measured peaks and OOM bounds, per (recipe, stage, drivers)."""


@calibration_group.command(name="list")
@click.option("--recipe", help="Only this recipe's entries (cookbook:recipe).")
@json_option
@click.pass_obj
def calibration_list(app: App, recipe: str | None, as_json: bool) -> None:
    """List calibration entries."""
    from blut_core import Broker

    entries = [e for e in Broker(app).store.entries() if recipe is None or e.recipe == recipe]
    if as_json:
        echo_json([e.to_json() for e in entries])
        return
    table([(e.recipe, e.stage, ", ".join(f"{k}={v}" for k, v in e.drivers.items()) or "-",
            _size(e.peak), e.source, e.samples) for e in entries],
          ["RECIPE", "STAGE", "DRIVERS", "PEAK", "SOURCE", "SAMPLES"])


@calibration_group.command(name="forget")
@click.option("--recipe", help="Entries of this recipe.")
@click.option("--stage", help="Entries of this stage (with --recipe, of that recipe only).")
@click.option("--key", "key_text", help="One entry, by its key (as `list --json` shows it).")
@click.option("--all", "everything", is_flag=True, help="Every entry.")
@json_option
@click.pass_obj
def calibration_forget(app: App, recipe: str | None, stage: str | None, key_text: str | None,
                       everything: bool, as_json: bool) -> None:
    """Forget entries (e.g. a stale OOM bound), so the model's estimate applies again."""
    from blut_core import Broker, ConfigError

    if not (everything or recipe or stage or key_text):
        raise ConfigError("say what to forget", hint="use --recipe, --stage, --key or --all")
    gone = Broker(app).store.forget(
        lambda e: everything or ((recipe is None or e.recipe == recipe)
                                 and (stage is None or e.stage == stage)
                                 and (key_text is None or e.key.text == key_text)))
    if as_json:
        echo_json({"forgotten": [e.to_json() for e in gone]})
        return
    click.echo(f"forgot {len(gone)} entr{'y' if len(gone) == 1 else 'ies'}")


@broker_group.command(name="ledger")
@json_option
@click.pass_obj
def ledger_command(app: App, as_json: bool) -> None:
    """Show memory booked by running stages of every blut process on this machine."""
    from blut_core import Broker

    broker = Broker(app)
    bookings = broker.ledger.bookings()
    if as_json:
        echo_json({"path": str(broker.ledger.path),
                   "bookings": [dict(b.to_json(), outstanding=b.outstanding()) for b in bookings]})
        return
    click.echo(f"ledger {broker.ledger.path}: {len(bookings)} booking(s)")
    if bookings:
        table([(b.label, b.pid, _size(b.bytes), _size(b.outstanding()), b.cgroup or "-")
               for b in bookings], ["STAGE", "PID", "BOOKED", "OUTSTANDING", "CGROUP"])
