"""``blut runs list`` and ``blut runs show RUN``: past and current runs, from run directories.

Entry point ``cli-runs``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import click

from blut_core import App, hookimpl
from blut_core.output import echo_json, human_bytes, human_seconds, json_option, table
from blut_core.runs import find_run, list_runs, load_run, read_json


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


@click.group(name="runs")
def runs_group() -> None:
    """Inspect runs: what ran, when, and how it ended."""


@runs_group.command(name="list")
@click.option("--recipe", help="Only runs of this recipe (cookbook:recipe or bare name).")
@click.option("--state", help="Only runs in this state (ok, failed, running, interrupted...).")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="At most N runs.")
@json_option
@click.pass_obj
def list_command(app: App, recipe: str | None, state: str | None, limit: int,
                 as_json: bool) -> None:
    """Runs, newest first."""
    runs = list_runs(app.settings.runs_dir)
    if recipe:
        runs = [r for r in runs if r.recipe == recipe or r.recipe.split(":")[-1] == recipe]
    if state:
        runs = [r for r in runs if r.state == state]
    runs = runs[:limit]
    if as_json:
        echo_json([r.to_json(with_stages=False) for r in runs])
        return
    table([(r.run_id, r.recipe, r.state, _when(r.started), human_seconds(r.wall),
            " ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))) for r in runs],
          ["RUN", "RECIPE", "STATE", "STARTED", "WALL", "STAGES"])


@runs_group.command(name="show")
@click.argument("run")
@json_option
@click.pass_obj
def show_command(app: App, run: str, as_json: bool) -> None:
    """One run (id, unique prefix, or 'latest'): its stages, params and provenance."""
    path = find_run(app.settings.runs_dir, run)
    record = load_run(path)
    params = read_json(path / "params.json")
    prov = read_json(path / "provenance.json") or {}
    if as_json:
        echo_json({**record.to_json(), "params": params, "provenance": prov})
        return
    click.echo(f"run      {record.run_id}\nrecipe   {record.recipe}\nstate    {record.state}")
    click.echo(f"started  {_when(record.started)}\nwall     {human_seconds(record.wall)}")
    click.echo(f"dir      {record.path}")
    git = prov.get("recipe_git") or {}
    if git.get("commit"):
        click.echo(f"code     {git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}")
    click.echo(f"host     {prov.get('host', '?')} ({prov.get('cores', '?')} cores, "
               f"{human_bytes(prov.get('ram_bytes'))})\n")
    table([(name, st.get("state"), st.get("attempts", 0), human_seconds(st.get("duration")),
            human_bytes(st.get("peak_bytes")), (st.get("output_hash") or "")[:12],
            st.get("error") or "") for name, st in record.stages.items()],
          ["STAGE", "STATE", "ATTEMPTS", "TIME", "PEAK", "OUTPUT", "ERROR"])


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield runs_group
