"""``blut cache stats [RUN]`` and ``blut cache gc --max-size SIZE``.

Entry point ``cli-cache``. Entries live in ``$BLUT_HOME/cache/<key[:2]>/<key>/`` with a
``meta.json`` whose modification time is the entry's last use (``Cache.lookup`` touches it).
``gc`` removes least recently used entries first and never one a running run may use: one
its status stream names, one holding an output it produced or consumed, or one used since
it started. An entry is removed by renaming it aside first, so a concurrent lookup sees a
whole entry or none. ``gc`` also removes what interrupted stores and removals left behind
(``.KEY.PID.tmp``, ``.KEY.PID.gone``, ``.gc-KEY-PID``) once the process that made it is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from blut_core import ConfigError, hookimpl
from blut_core.cli import echo_json, human_bytes, json_option, table

if TYPE_CHECKING:
    from blut_core import App


class Entry(NamedTuple):
    """One cache entry as ``cache stats`` and ``cache gc`` see it."""

    key: str
    path: Path
    stage: str
    output_hash: str
    size: int
    last_used: float


def scan(cache_root: Path) -> list[Entry]:
    """Every readable cache entry (hidden and half-written entries are skipped)."""
    found: list[Entry] = []
    if not cache_root.is_dir():
        return found
    for shard in os.scandir(cache_root):
        if not shard.is_dir() or shard.name.startswith("."):
            continue
        for e in os.scandir(shard.path):
            if e.name.startswith(".") or not e.is_dir():
                continue
            meta_path = Path(e.path) / "meta.json"
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                found.append(Entry(key=e.name, path=Path(e.path), stage=str(meta.get("stage")),
                                   output_hash=str(meta.get("output_hash")),
                                   size=int(meta.get("size") or 0),
                                   last_used=meta_path.stat().st_mtime))
            except (OSError, ValueError, TypeError):
                continue
    return found


def running_runs(runs_root: Path) -> list[tuple[float, set[str], set[str]]]:
    """``(started, cache keys, output hashes)`` of every run that is running right now."""
    from blut_core.store import STATUS, driver_alive, load_run, read_events

    found: list[tuple[float, set[str], set[str]]] = []
    if not runs_root.is_dir():
        return found
    for p in runs_root.iterdir():
        if not (p / STATUS).exists() or not driver_alive(p):
            continue
        if load_run(p).state != "running":
            continue
        keys: set[str] = set()
        hashes: set[str] = set()
        started = 0.0
        for ev in read_events(p / STATUS):
            if ev.get("event") == "run_started":
                started = float(ev.get("t") or 0.0)
            if isinstance(ev.get("cache_key"), str):
                keys.add(ev["cache_key"])
            if isinstance(ev.get("output_hash"), str):
                hashes.add(ev["output_hash"])
        found.append((started, keys, hashes))
    return found


@click.group(name="cache")
def cache_group() -> None:
    """The content-addressed cache of stage outputs: hit rates, sizes, collection."""


def _counts(app: App, run: str | None) -> tuple[str | None, dict[str, dict[str, int]]]:
    from blut_core.lineage import extract_run
    from blut_core.store import find_run

    if run is not None:
        lineage = extract_run(find_run(app.settings.runs_dir, run), cache_root=app.settings.cache_dir)
        counts: dict[str, dict[str, int]] = {}
        for s in lineage.stages:
            c = counts.setdefault(s["stage"], {"hits": 0, "misses": 0})
            if s["cached"]:
                c["hits"] += 1
            elif s["cache_key"] and s["attempt"] == 1:
                c["misses"] += 1
        return lineage.run_id, counts
    from blut_plugins.duckdb import DuckDBLineage
    from blut_plugins.duckdb.queries import cache_counts

    with DuckDBLineage(app.settings.home).reader() as con:
        return None, cache_counts(con)


@cache_group.command(name="stats")
@click.argument("run", required=False)
@json_option
@click.pass_obj
def stats_command(app: App, run: str | None, as_json: bool) -> None:
    """Cache hits and misses per stage (all indexed runs, or RUN) and cache sizes."""
    run_id, counts = _counts(app, run)
    entries = scan(app.settings.cache_dir)
    sizes: dict[str, dict[str, int]] = {}
    for e in entries:
        s = sizes.setdefault(e.stage, {"entries": 0, "bytes": 0})
        s["entries"] += 1
        s["bytes"] += e.size
    names = sorted(set(counts) | (set(sizes) if run is None else set()))
    stages: list[dict[str, Any]] = [{"stage": n, **counts.get(n, {"hits": 0, "misses": 0}),
               **sizes.get(n, {"entries": 0, "bytes": 0})} for n in names]
    total = {k: sum(int(s[k]) for s in stages) for k in ("hits", "misses")}
    total.update(entries=len(entries), bytes=sum(e.size for e in entries))
    if as_json:
        echo_json({"run_id": run_id, "cache_dir": str(app.settings.cache_dir),
                   "stages": stages, "total": total})
        return
    table([(s["stage"], s["hits"], s["misses"], s["entries"], human_bytes(s["bytes"]))
           for s in stages], ["STAGE", "HITS", "MISSES", "ENTRIES", "SIZE"])
    click.echo(f"\n{total['hits']} hit(s), {total['misses']} miss(es); cache holds "
               f"{total['entries']} entries, {human_bytes(total['bytes'])} in "
               f"{app.settings.cache_dir}")


def parse_max_size(text: str) -> int:
    """``10G``, ``512M``, ``1.5GiB`` or bytes; ``0`` empties the cache."""
    if text.strip() == "0":
        return 0
    from blut_core import parse_size

    return parse_size(text, what="--max-size")

_LEFTOVER = re.compile(r"\.(?:gc-[0-9a-f]+-(\d+)|[0-9a-f]+\.(\d+)\.(?:tmp|gone))")


def leftovers(cache_root: Path) -> list[tuple[Path, int]]:
    """``(path, bytes)`` of what an interrupted store or removal left in the cache (a
    temporary or renamed-aside entry) whose process is no longer running."""
    from blut_core.store import process_alive

    found: list[tuple[Path, int]] = []
    if not cache_root.is_dir():
        return found
    for shard in os.scandir(cache_root):
        if not shard.is_dir(follow_symlinks=False):
            continue
        for e in os.scandir(shard.path):
            m = _LEFTOVER.fullmatch(e.name)
            if m is None or process_alive(int(m.group(1) or m.group(2)), None):
                continue
            size = 0
            for root, _, files in os.walk(e.path):
                for f in files:
                    try:
                        size += os.lstat(os.path.join(root, f)).st_size
                    except OSError:
                        continue
            found.append((Path(e.path), size))
    return found


def remove_entry(entry: Entry) -> bool:
    """Rename the entry aside (atomic for readers), then delete it."""
    aside = entry.path.with_name(f".gc-{entry.key}-{os.getpid()}")
    try:
        os.replace(entry.path, aside)
    except OSError:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


@cache_group.command(name="gc")
@click.option("--max-size", "max_size", required=True, metavar="SIZE",
              help="Shrink the cache to at most SIZE (e.g. 10G, 500M; 0 empties it).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@json_option
@click.pass_obj
def gc_command(app: App, max_size: str, dry_run: bool, as_json: bool) -> None:
    """Remove least recently used entries until the cache fits SIZE.

    Entries a running run may use are never removed.
    """
    limit = parse_max_size(max_size)
    entries = sorted(scan(app.settings.cache_dir), key=lambda e: (e.last_used, e.key))
    running = running_runs(app.settings.runs_dir)
    since = min((r[0] for r in running), default=None)
    keys = set().union(*(r[1] for r in running)) if running else set()
    hashes = set().union(*(r[2] for r in running)) if running else set()

    def protected(e: Entry) -> bool:
        return (e.key in keys or e.output_hash in hashes
                or (since is not None and e.last_used >= since))

    before = sum(e.size for e in entries)
    total = before
    removed: list[dict[str, Any]] = []
    kept_for_running = 0
    for e in entries:
        if total <= limit:
            break
        if protected(e):
            kept_for_running += 1
            continue
        if dry_run or remove_entry(e):
            total -= e.size
            removed.append({"key": e.key, "stage": e.stage, "size": e.size,
                            "last_used": e.last_used})
    left = leftovers(app.settings.cache_dir)
    if not dry_run:
        for path, _ in left:
            shutil.rmtree(path, ignore_errors=True)
    left_bytes = sum(size for _, size in left)
    data = {"max_size": limit, "dry_run": dry_run,
            "before": {"entries": len(entries), "bytes": before},
            "after": {"entries": len(entries) - len(removed), "bytes": total},
            "removed": removed, "protected": kept_for_running, "running_runs": len(running),
            "leftovers": {"removed": len(left), "bytes": left_bytes}}
    if as_json:
        echo_json(data)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} "
               f"({human_bytes(before - total)}); cache {human_bytes(before)} → "
               f"{human_bytes(total)} (limit {human_bytes(limit)})")
    if left:
        click.echo(f"{verb} {len(left)} leftover{'' if len(left) == 1 else 's'} of interrupted "
                   f"stores ({human_bytes(left_bytes)})")
    if kept_for_running:
        click.echo(f"kept {kept_for_running} entr{'y' if kept_for_running == 1 else 'ies'} "
                   f"a running run may use")
    if total > limit and not kept_for_running:
        raise ConfigError("the cache is still above the limit", hint="this should not happen")


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield cache_group
