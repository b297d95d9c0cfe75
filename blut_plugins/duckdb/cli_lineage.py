"""``blut lineage reindex|trace|graph|status``: the lineage index and artifact provenance.

Entry point ``cli-lineage``. ``reindex`` rebuilds sinks from the run directories (the
source of truth); ``trace`` and ``graph`` walk an artifact's whole upstream DAG in the
DuckDB index.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blut_core import BlutError, hookimpl
from blut_core.cli import echo_json, human_bytes, human_seconds, json_option, table

if TYPE_CHECKING:
    from blut_core import App


@click.group(name="lineage")
def lineage_group() -> None:
    """The lineage index: rebuild it, trace an artifact upstream, draw its graph."""


def run_dirs(runs_root: Path) -> list[Path]:
    """Candidate run directories (hidden entries are temporary and skipped)."""
    if not runs_root.is_dir():
        return []
    return sorted(p for p in runs_root.iterdir() if p.is_dir() and not p.name.startswith("."))


@lineage_group.command(name="reindex")
@click.option("--sink", "sink_names", multiple=True, metavar="NAME",
              help="Rebuild this sink (repeatable). Default: duckdb, the index blut queries.")
@json_option
@click.pass_obj
def reindex_command(app: App, sink_names: tuple[str, ...], as_json: bool) -> None:
    """Rebuild the lineage index from every run directory (safe to repeat).

    A damaged run directory is skipped with a warning; the others are indexed.
    """
    from blut_core.host import get_logger
    from blut_core.lineage import RunLineage, extract_run, open_sink

    home = app.settings.home
    targets = [(n, open_sink(app.registry, n, home, records=app.pm.records))
               for n in dict.fromkeys(sink_names or ("duckdb",))]
    log = get_logger()
    skipped: list[dict[str, str]] = []
    started = time.perf_counter()

    def lineages() -> Iterator[RunLineage]:
        for path in run_dirs(app.settings.runs_dir):
            try:
                yield extract_run(path, cache_root=app.settings.cache_dir)
            except Exception as exc:
                message = exc.message if isinstance(exc, BlutError) else f"{type(exc).__name__}: {exc}"
                log.warning("run_dir_skipped", run=path.name, error=message)
                skipped.append({"run_dir": str(path), "error": message})

    runs: Any = lineages() if len(targets) == 1 else list(lineages())
    counts = {name: sink.rebuild(runs) for name, sink in targets}
    seconds = time.perf_counter() - started
    indexed = next(iter(counts.values()), {}).get("runs", 0)
    if as_json:
        echo_json({"runs": indexed, "skipped": skipped, "sinks": counts,
                   "seconds": round(seconds, 3)})
        return
    for name, c in counts.items():
        click.echo(f"{name}: " + ", ".join(f"{v} {k}" for k, v in c.items()))
    click.echo(f"indexed {indexed} run(s), skipped {len(skipped)} damaged, "
               f"in {human_seconds(seconds)}")


def _resolve_and_trace(app: App, prefix: str) -> dict[str, Any]:
    from blut_plugins.duckdb import DuckDBLineage
    from blut_plugins.duckdb.queries import resolve_hash, trace

    with DuckDBLineage(app.settings.home).reader() as con:
        return trace(con, resolve_hash(con, prefix))


def _provenance_line(run: dict[str, Any] | None) -> str:
    if not run:
        return "(run not indexed)"
    code = (run.get("recipe_commit") or "?")[:12] + (" (dirty)" if run.get("recipe_dirty") else "")
    parts = [f"run {run['run_id']}", run.get("recipe") or "?", f"outcome {run.get('outcome')}",
             f"code {code}", f"blut {run.get('blut_version') or '?'}"
             f"@{(run.get('blut_commit') or '?')[:8]}",
             f"params {(run.get('params_fingerprint') or '?')[:12]}",
             f"host {run.get('host') or '?'} ({run.get('cores') or '?'} cores, "
             f"{human_bytes(run.get('ram_bytes'))}"
             + (f", {run['gpu_name']}" if run.get("gpu_name") else "") + ")"]
    return "  ".join(parts)


@lineage_group.command(name="trace")
@click.argument("hash_prefix", metavar="HASH-PREFIX")
@json_option
@click.pass_obj
def trace_command(app: App, hash_prefix: str, as_json: bool) -> None:
    """Everything upstream of an artifact (dir or file hash), every input at every merge."""
    t = _resolve_and_trace(app, hash_prefix)
    if as_json:
        echo_json(t)
        return
    art = t["artifact"]
    where = f"{art['stage']}/out" + (f"/{art['path']}" if art["kind"] == "file" else "")
    click.echo(f"artifact {art['hash'][:16]} ({art['kind']}, {human_bytes(art['size'])}) {where}")
    if t["occurrence_count"] > 1:
        click.echo(f"  produced in {t['occurrence_count']} places; tracing the newest")
    click.echo(f"  {_provenance_line(t['runs'].get(art['run_id']))}")
    click.echo(f"upstream: {len(t['hops'])} stage(s)")
    for hop in t["hops"]:
        indent = "  " * (hop["depth"] + 1)
        inputs = ", ".join(i["stage"] for i in hop["inputs"]) or "none (source)"
        click.echo(f"{indent}{hop['stage']}  {hop['state']}  {(hop['output_hash'] or '-')[:12]}  "
                   f"peak {human_bytes(hop['peak_bytes'])}  cap {human_bytes(hop['cap_bytes'])}  "
                   f"{human_seconds(hop['duration'])}  ← {inputs}")
        if hop["origin_run_id"] and hop["origin_run_id"] != hop["run_id"]:
            click.echo(f"{indent}  computed earlier: "
                       f"{_provenance_line(t['runs'].get(hop['origin_run_id']))}")


@lineage_group.command(name="graph")
@click.argument("digest", metavar="HASH")
@click.option("--format", "fmt", type=click.Choice(["dot", "json"]), default="dot",
              show_default=True, help="Graphviz DOT or JSON.")
@json_option
@click.pass_obj
def graph_command(app: App, digest: str, fmt: str, as_json: bool) -> None:
    """The upstream DAG of an artifact as DOT (pipe it to `dot -Tsvg`) or JSON."""
    from blut_plugins.duckdb.queries import graph, to_dot

    g = graph(_resolve_and_trace(app, digest))
    if as_json or fmt == "json":
        echo_json(g)
    else:
        click.echo(to_dot(g))


@lineage_group.command(name="status")
@json_option
@click.pass_obj
def status_command(app: App, as_json: bool) -> None:
    """The configured sinks, and the DuckDB index: path, schema version, row counts."""
    import os

    from blut_core.lineage import configured as configured_sinks
    from blut_core.lineage import open_sink
    from blut_plugins.duckdb import SCHEMA_VERSION, DuckDBLineage, LineageMissing
    from blut_plugins.duckdb import schema_version as db_version

    configured: list[dict[str, Any]] = []
    for name in configured_sinks({**os.environ, **app.settings.environ}):
        try:
            open_sink(app.registry, name, app.settings.home, records=app.pm.records)
            configured.append({"name": name, "ok": True, "error": None})
        except BlutError as err:
            configured.append({"name": name, "ok": False, "error": err.message})
    store = DuckDBLineage(app.settings.home)
    db: dict[str, Any] = {"path": str(store.path), "exists": store.path.exists(),
                          "schema_version": None, "supported_version": SCHEMA_VERSION,
                          "rows": {}}
    try:
        with store.reader() as con:
            from blut_core.lineage import TABLES

            db["schema_version"] = db_version(con)
            db["rows"] = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    except LineageMissing:
        pass
    if as_json:
        echo_json({"sinks": configured, "duckdb": db})
        return
    table([(s["name"], "ok" if s["ok"] else "error", s["error"] or "") for s in configured],
          ["SINK", "STATE", "ERROR"])
    click.echo(f"\n{db['path']}: " + (f"schema v{db['schema_version']}, " + ", ".join(
        f"{v} {k}" for k, v in db["rows"].items()) if db["exists"] else "not built yet"))


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield lineage_group
