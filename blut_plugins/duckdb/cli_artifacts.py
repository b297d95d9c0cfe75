"""``blut artifacts ls RUN`` and ``blut artifacts show HASH-PREFIX``.

Entry point ``cli-artifacts``. ``ls`` reads the run directory (and the cache manifests);
``show`` looks the hash up in the lineage index: where it was produced, where it was used,
its files.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from blut_core import hookimpl
from blut_core.cli import echo_json, human_bytes, json_option, table

if TYPE_CHECKING:
    from blut_core import App


@click.group(name="artifacts")
def artifacts_group() -> None:
    """Stage outputs (directories) and the files in them, by content hash."""


@artifacts_group.command(name="ls")
@click.argument("run")
@click.option("--dirs", "dirs_only", is_flag=True, help="Only stage output directories.")
@json_option
@click.pass_obj
def ls_command(app: App, run: str, dirs_only: bool, as_json: bool) -> None:
    """The artifacts of RUN: each stage's output directory and every file in it."""
    from blut_core.lineage import extract_run
    from blut_core.store import find_run

    lineage = extract_run(find_run(app.settings.runs_dir, run), cache_root=app.settings.cache_dir)
    rows = [{k: a[k] for k in ("stage", "kind", "hash", "size", "files", "path", "parent_hash")}
            for a in lineage.artifacts if not dirs_only or a["kind"] == "dir"]
    if as_json:
        echo_json({"run_id": lineage.run_id, "artifacts": rows})
        return
    table([(a["stage"], a["kind"], a["hash"][:16], human_bytes(a["size"]), a["path"])
           for a in rows], ["STAGE", "KIND", "HASH", "SIZE", "PATH"])


@artifacts_group.command(name="show")
@click.argument("hash_prefix", metavar="HASH-PREFIX")
@json_option
@click.pass_obj
def show_command(app: App, hash_prefix: str, as_json: bool) -> None:
    """One artifact: kind, size, the runs that produced and consumed it, its files."""
    from blut_plugins.duckdb import DuckDBLineage
    from blut_plugins.duckdb.queries import resolve_hash, show_artifact

    with DuckDBLineage(app.settings.home).reader() as con:
        data = show_artifact(con, resolve_hash(con, hash_prefix))
    cache_paths = []
    for made in data["produced_by"]:
        key = made.get("cache_key")
        if key and (app.settings.cache_dir / key[:2] / key / "meta.json").exists():
            cache_paths.append(str(app.settings.cache_dir / key[:2] / key))
    data["cache_entries"] = sorted(set(cache_paths))
    if as_json:
        echo_json(data)
        return
    click.echo(f"artifact {data['hash']}\nkind     {data['kind']}\nsize     "
               f"{human_bytes(data['size'])}")
    if data["kind"] == "file":
        click.echo(f"in dir   {data['dir_hash']}")
    for entry in data["cache_entries"]:
        click.echo(f"cached   {entry}")
    click.echo(f"\nproduced {data['occurrence_count']} time(s):")
    table([(o["run_id"], o["stage"], o["recipe"], o["outcome"], o["path"])
           for o in data["occurrences"]], ["RUN", "STAGE", "RECIPE", "OUTCOME", "PATH"])
    if data["consumed_by"]:
        click.echo("\nconsumed by:")
        table([(c["run_id"], c["stage"], (c["output_hash"] or "-")[:16])
               for c in data["consumed_by"]], ["RUN", "STAGE", "OUTPUT"])
    if data["files"]:
        click.echo("\nfiles:")
        table([(f["path"], f["hash"][:16], human_bytes(f["size"])) for f in data["files"]],
              ["PATH", "HASH", "SIZE"])


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield artifacts_group
