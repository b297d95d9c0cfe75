"""``blut runs list|show|diff|top|report``: past and current runs.

Entry point ``cli-runs``. ``list`` and ``top`` query the lineage database (fast with
thousands of runs); ``list`` adds runs the database does not know yet (running, or finished
before it existed) from their directories, and falls back to the directories alone, with a
hint, when there is no database. ``show`` and ``diff`` read run directories, the source of
truth, so they work for a run that is still running; so does ``report``, which writes a run's
report through an installed report format (``blut_reports``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blut_core import ConfigError, hookimpl
from blut_core.cli import complete_runs, echo_json, human_bytes, human_seconds, json_option, table

if TYPE_CHECKING:
    from blut_core import App

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def parse_since(text: str, now: float | None = None) -> float:
    """``3d``, ``12h``, ``30m``, ``2026-11-01`` or ``2026-11-01T10:00`` → unix time."""
    m = _AGO.match(text.strip().lower())
    if m:
        return (time.time() if now is None else now) - float(m[1]) * _UNIT[m[2]]
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ConfigError(f"--since {text!r} is not a time",
                          hint="use a duration such as 3d, 12h, 30m or a date such as "
                               "2026-11-01 or 2026-11-01T10:00") from None


@click.group(name="runs")
def runs_group() -> None:
    """Inspect runs: what ran, when, how it ended, and how two runs differ."""


def _db_runs(app: App, recipe: str | None, outcome: str | None, since: float | None,
             limit: int) -> list[dict[str, Any]] | None:
    """Runs from the lineage database merged with unindexed run directories (None: no DB).

    Only the names of the run directories are listed, and the run directories of the rows
    shown are looked at (six stats each); a directory is read only when the database does
    not know it, knows it as running or interrupted, or it changed after its run ended (a
    damaged file, most likely: ``--state damaged`` looks at every indexed run for that).
    """
    from blut_plugins.duckdb import DuckDBLineage, LineageMissing
    from blut_plugins.duckdb.queries import list_runs as db_list_runs
    from blut_plugins.duckdb.queries import run_ids

    try:
        with DuckDBLineage(app.settings.home).reader() as con:
            # running/interrupted rows are re-read from their directories (they may have ended)
            damaged = outcome == "damaged"  # the index never holds one: look at every run
            rows = db_list_runs(con, recipe=recipe, outcome=None if damaged else outcome,
                                since=since, limit=None if damaged else limit, unfinished=True)
            known = run_ids(con)
    except LineageMissing:
        return None
    runs_root = app.settings.runs_dir
    try:
        names = set(os.listdir(runs_root)).difference(known)
    except (FileNotFoundError, NotADirectoryError):
        names = set()
    stale = [r for r in rows if (r["state"] in ("running", "interrupted") and Path(r["path"]).is_dir())
             or _changed_after_it_ended(r)]
    for r in rows:
        r.setdefault("damage", [])
    if not names and not stale:
        return _ordered(rows, outcome, limit)
    # blut_core.store.runs imports attrs: only when a directory must be read
    from blut_core.store import is_run_dir, load_run

    extra = []
    for name in sorted(names):
        path = runs_root / name
        if is_run_dir(path):  # a damaged run is never indexed: it is read (and shown) here
            extra.append(load_run(path).to_json(with_stages=False))
    if recipe:
        extra = [r for r in extra if r["recipe"] == recipe or r["recipe"].split(":")[-1] == recipe]
    if since is not None:
        extra = [r for r in extra if (r["started"] or 0) >= since]
    for r in stale:
        r.update(load_run(Path(r["path"])).to_json(with_stages=False))
    return _ordered(rows + extra, outcome, limit)


#: Seconds after its end that an indexed run's directory may still look changed (clocks).
_SETTLED = 1.0
_RUN_FILES = ("status.jsonl", "plan.json", "params.json", "provenance.json", "driver.json")


def _changed_after_it_ended(row: dict[str, Any]) -> bool:
    """Whether an indexed, finished run's directory (or its status stream) changed after the
    run ended: a file replaced or removed since, so the index may no longer say what it holds."""
    end = row.get("ended") or row.get("started")
    if row["state"] in ("running", "interrupted") or not isinstance(end, (int, float)):
        return False
    try:
        newest = os.stat(row["path"]).st_mtime
    except OSError:
        return False  # the directory is gone: the index is all there is
    try:
        for name in _RUN_FILES:
            newest = max(newest, os.stat(os.path.join(row["path"], name)).st_mtime)
    except OSError:
        return True
    return newest > end + _SETTLED


def _ordered(runs: list[dict[str, Any]], outcome: str | None, limit: int) -> list[dict[str, Any]]:
    if outcome:
        runs = [r for r in runs if r["state"] == outcome]
    runs.sort(key=lambda r: (r["started"] or 0.0, r["run_id"]), reverse=True)
    return runs[:limit]


@runs_group.command(name="list")
@click.option("--recipe", help="Only runs of this recipe (cookbook:recipe or bare name).")
@click.option("--outcome", "--state", "outcome",
              help="Only runs that ended so (ok, failed, cancelled, refused), or are running, "
                   "interrupted or damaged. --state is an alias.")
@click.option("--since", help="Only runs started since: 3d, 12h, 30m, or a date (2026-11-01).")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="At most N runs.")
@json_option
@click.pass_obj
def list_command(app: App, recipe: str | None, outcome: str | None, since: str | None,
                 limit: int, as_json: bool) -> None:
    """Runs, newest first."""
    since_t = parse_since(since) if since else None
    runs = _db_runs(app, recipe, outcome, since_t, limit)
    if runs is None:
        from blut_core.host import get_logger
        from blut_core.store import list_runs

        get_logger().warning("lineage_db_missing", path=str(app.settings.home / "lineage.duckdb"),
                             hint="listing from run directories (slow with many runs); "
                                  "`blut lineage reindex` builds the index")
        records = list_runs(app.settings.runs_dir)
        if recipe:
            records = [r for r in records if r.recipe == recipe or r.recipe.split(":")[-1] == recipe]
        if outcome:
            records = [r for r in records if r.state == outcome]
        if since_t is not None:
            records = [r for r in records if (r.started or 0) >= since_t]
        runs = [r.to_json(with_stages=False) for r in records[:limit]]
    if as_json:
        echo_json(runs)
        return
    rows = [(r["run_id"], r["recipe"] + (f" (schedule {r['schedule']})" if r.get("schedule") else ""),
             r["state"], _when(r["started"]), human_seconds(r["wall"]),
             " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()))) for r in runs]
    if any(r.get("damage") for r in runs):  # why a run is damaged, next to it
        table([(*row, "; ".join(r.get("damage") or ())) for row, r in zip(rows, runs, strict=True)],
              ["RUN", "RECIPE", "STATE", "STARTED", "WALL", "STAGES", "DAMAGE"])
        return
    table(rows, ["RUN", "RECIPE", "STATE", "STARTED", "WALL", "STAGES"])


@runs_group.command(name="show")
@click.argument("run", shell_complete=complete_runs)
@json_option
@click.pass_obj
def show_command(app: App, run: str, as_json: bool) -> None:
    """One run (id, unique prefix, or 'latest'): its stages, params and provenance."""
    from blut_core.store import find_run, load_run, read_json

    path = find_run(app.settings.runs_dir, run)
    record = load_run(path)
    params = read_json(path / "params.json")
    prov = read_json(path / "provenance.json")
    prov = prov if isinstance(prov, dict) else {}
    if as_json:
        echo_json({**record.to_json(), "params": params, "provenance": prov})
        return
    click.echo(f"run      {record.run_id}\nrecipe   {record.recipe}\nstate    {record.state}")
    for n, problem in enumerate(record.damage):
        click.echo(f"{'damaged' if n == 0 else '':<9}{problem}")
    if record.damage:
        click.echo(f"readable {', '.join(record.readable) or 'none of its files'}; "
                   + (f"{len(record.stages)} stage(s) below, from the events that could be read"
                      if record.stages else "no stage could be read from its events"))
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


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)


@runs_group.command(name="diff")
@click.argument("run_a", metavar="A", shell_complete=complete_runs)
@click.argument("run_b", metavar="B", shell_complete=complete_runs)
@click.option("--all", "everything", is_flag=True, help="Also list params and provenance that are equal.")
@json_option
@click.pass_obj
def diff_command(app: App, run_a: str, run_b: str, everything: bool, as_json: bool) -> None:
    """Two runs side by side: params, provenance, outcome, final metrics, stage peaks."""
    from blut_core.lineage import diff_runs, extract_run
    from blut_core.store import find_run

    a = extract_run(find_run(app.settings.runs_dir, run_a), cache_root=app.settings.cache_dir)
    b = extract_run(find_run(app.settings.runs_dir, run_b), cache_root=app.settings.cache_dir)
    data = diff_runs(a, b, everything=everything)
    if as_json:
        echo_json(data)
        return
    click.echo(f"A {data['a']}\nB {data['b']}\n")
    rows: list[tuple[str, str, str]] = [("outcome", data["outcome"]["a"], data["outcome"]["b"]),
                                         ("wall", human_seconds(data["wall"]["a"]),
                                          human_seconds(data["wall"]["b"]))]
    rows += [(f"params.{p['key']}", _fmt(p["a"]), _fmt(p["b"])) for p in data["params"]]
    rows += [(p["key"], _fmt(p["a"]), _fmt(p["b"])) for p in data["provenance"]]
    rows += [(f"metric {m['key']}", _fmt(m["a"]), _fmt(m["b"])) for m in data["metrics"]]
    table(rows, ["", "A", "B"])
    click.echo("")
    table([(s["stage"], (s["a"] or {}).get("state", "-"), human_bytes((s["a"] or {}).get("peak_bytes")),
            (s["b"] or {}).get("state", "-"), human_bytes((s["b"] or {}).get("peak_bytes")))
           for s in data["stages"]], ["STAGE", "A STATE", "A PEAK", "B STATE", "B PEAK"])
    if not data["params"] and not data["provenance"]:
        click.echo("\nsame params and provenance")


@runs_group.command(name="top")
@click.option("--metric", required=True, help="A final metric: NAME or STAGE.NAME.")
@click.option("--min", "direction", flag_value="min", help="Lowest value first.")
@click.option("--max", "direction", flag_value="max", default=True, help="Highest value first (default).")
@click.option("--recipe", help="Only runs of this recipe.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=10, show_default=True)
@json_option
@click.pass_obj
def top_command(app: App, metric: str, direction: str, recipe: str | None, limit: int,
                as_json: bool) -> None:
    """Runs ranked by the final value of a metric."""
    from blut_plugins.duckdb import DuckDBLineage
    from blut_plugins.duckdb.queries import metric_names, top_runs

    with DuckDBLineage(app.settings.home).reader() as con:
        rows = top_runs(con, metric, maximize=direction != "min", limit=limit, recipe=recipe)
        known = [] if rows else metric_names(con)
    if not rows and not as_json:
        raise ConfigError(f"no indexed run has a final value for metric {metric!r}",
                          hint=f"known metrics: {', '.join(known) or 'none'}")
    if as_json:
        echo_json(rows)
        return
    table([(r["run_id"], r["recipe"], r["outcome"], f"{r['stage']}.{r['metric']}", _fmt(r["value"]))
           for r in rows], ["RUN", "RECIPE", "OUTCOME", "METRIC", "VALUE"])


@runs_group.command(name="report")
@click.argument("run", shell_complete=complete_runs)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Where to write it (default: report.html in the run's directory; - for stdout).")
@click.option("--format", "fmt", default="html", show_default=True, metavar="NAME",
              help="An installed report format (see `blut plugins list`).")
@json_option
@click.pass_obj
def report_command(app: App, run: str, output: Path | None, fmt: str, as_json: bool) -> None:
    """Write RUN's report (id, unique prefix, or 'latest'): one self-contained file with the
    attempts over time, memory, estimates against peaks and metrics. Prints its path."""
    from blut_core.store import find_run

    path = find_run(app.settings.runs_dir, run)
    spec = app.registry.require("reports", fmt)
    document = spec.render(path)
    if output is not None and str(output) == "-":
        click.echo(document, nl=False)
        return
    target = output if output is not None else path / f"report{spec.suffix}"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(document, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the report to {target}: {exc.strerror or exc}",
                          hint="pass -o FILE in a directory you can write to") from None
    if as_json:
        echo_json({"run_id": path.name, "format": spec.name, "path": str(target),
                   "bytes": len(document.encode())})
    else:
        click.echo(str(target))


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield runs_group
