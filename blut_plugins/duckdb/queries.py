"""Read-side queries over the DuckDB lineage database (used by the CLI command modules).

Every function takes an open connection (:meth:`DuckDBLineage.reader`) and returns plain
JSON-ready data; the shapes are documented in ``docs/lineage.md``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from blut_core import ConfigError

RUN_FIELDS = ("run_id", "recipe", "outcome", "params_fingerprint", "started", "ended", "wall",
              "recipe_commit", "recipe_dirty", "blut_commit", "blut_dirty", "blut_version",
              "python", "host", "cpu_model", "cores", "ram_bytes", "gpu_name", "gpu_memory_bytes",
              "launcher", "containment", "run_dir")
HOP_FIELDS = ("run_id", "stage", "attempt", "state", "cached", "output_hash", "cache_key",
              "footprint_bytes", "cap_bytes", "peak_bytes", "decision", "waited", "duration",
              "finished")
ARTIFACT_FIELDS = ("hash", "kind", "run_id", "stage", "path", "size", "files", "parent_hash",
                   "produced")


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _select(con: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    return _dicts(con.execute(sql, list(params)))


# -- runs ---------------------------------------------------------------------------------


def list_runs(con: Any, *, recipe: str | None = None, outcome: str | None = None,
              since: float | None = None, limit: int | None = None,
              unfinished: bool = False) -> list[dict[str, Any]]:
    """Runs newest first, in the shape of ``blut runs list --json``.

    ``unfinished`` also returns rows recorded as running or interrupted whatever ``outcome``
    asks for (the caller re-reads those from their run directories).
    """
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if recipe:
        where.append("(recipe = ? OR split_part(recipe, ':', -1) = ?)")
        params += [recipe, recipe]
    if outcome:
        where.append("(outcome = ? OR outcome IN ('running', 'interrupted'))" if unfinished
                     else "outcome = ?")
        params.append(outcome)
    if since is not None:
        where.append("started >= ?")
        params.append(since)
    sql = (f"SELECT run_id, recipe, outcome AS state, started, ended, wall, run_dir AS path, "
           f"counts, schedule FROM runs WHERE {' AND '.join(where)} "
           f"ORDER BY started DESC NULLS LAST, run_id DESC")
    if limit is not None:
        sql += f" LIMIT {int(limit) + (20 if unfinished else 0)}"
    rows = _select(con, sql, params)
    for r in rows:
        r["counts"] = json.loads(r["counts"]) if r["counts"] else {}
    return rows


def run_ids(con: Any) -> set[str]:
    return {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}


def top_runs(con: Any, metric: str, *, maximize: bool, limit: int,
             recipe: str | None = None) -> list[dict[str, Any]]:
    """Runs ranked by the final value of ``metric`` (``name`` or ``stage.name``)."""
    params: list[Any] = [metric, metric]
    extra = ""
    if recipe:
        extra = "AND (r.recipe = ? OR split_part(r.recipe, ':', -1) = ?)"
        params += [recipe, recipe]
    order = "DESC" if maximize else "ASC"
    return _select(con, f"""
        SELECT r.run_id, r.recipe, r.outcome, r.started, m.stage, m.name AS metric, m.value
        FROM metrics m JOIN runs r USING (run_id)
        WHERE m.final AND m.value IS NOT NULL AND (m.name = ? OR m.stage || '.' || m.name = ?)
        {extra}
        QUALIFY row_number() OVER (PARTITION BY m.run_id ORDER BY m.t DESC NULLS LAST) = 1
        ORDER BY m.value {order}, r.started DESC LIMIT {int(limit)}""", params)


def metric_names(con: Any) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT DISTINCT stage || '.' || name FROM metrics WHERE final ORDER BY 1 LIMIT 20"
    ).fetchall()]


# -- artifacts ----------------------------------------------------------------------------


def resolve_hash(con: Any, prefix: str) -> str:
    """The one artifact hash (dir or file) starting with ``prefix``; a clear error otherwise."""
    text = prefix.strip().lower()
    if len(text) < 4 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"{prefix!r} is not a hash prefix",
                          hint="give at least 4 hex digits of an artifact's content hash")
    rows = con.execute("""
        SELECT hash, any_value(kind), any_value(stage), count(*) FROM artifacts
        WHERE hash >= ? AND hash < ? GROUP BY hash ORDER BY hash LIMIT 11""",
                       [text, text + "g"]).fetchall()       # a range: row groups get skipped
    if not rows:
        raise ConfigError(f"no indexed artifact has a hash starting with {text!r}",
                          hint="see `blut artifacts ls RUN`; runs older than the index: "
                               "`blut lineage reindex`")
    if len(rows) > 1:
        shown = [f"{h[:16]} ({kind}, stage {stage})" for h, kind, stage, _ in rows[:10]]
        raise ConfigError(f"hash prefix {text!r} is ambiguous: {len(rows)}"
                          f"{'+' if len(rows) > 10 else ''} artifacts match",
                          hint="give more digits; candidates: " + ", ".join(shown))
    return str(rows[0][0])


def occurrences(con: Any, digest: str) -> list[dict[str, Any]]:
    """Every place ``digest`` was produced, newest first."""
    return _select(con, f"""
        SELECT {', '.join('a.' + f for f in ARTIFACT_FIELDS)}, r.recipe, r.outcome
        FROM artifacts a LEFT JOIN runs r USING (run_id)
        WHERE a.hash = ? ORDER BY a.produced DESC NULLS LAST, a.run_id DESC""", [digest])


def show_artifact(con: Any, digest: str, *, limit: int = 50) -> dict[str, Any]:
    """``blut artifacts show --json``: the artifact, where it was made and used, its files."""
    occ = occurrences(con, digest)
    first = occ[0]
    dir_hash = digest if first["kind"] == "dir" else first["parent_hash"]
    consumers = _select(con, """
        SELECT e.run_id, e.stage, e.input_stage, e.output_hash FROM edges e
        WHERE e.input_hash = ? ORDER BY e.run_id DESC, e.stage LIMIT ?""", [dir_hash, limit])
    files: list[dict[str, Any]] = []
    if first["kind"] == "dir":
        files = _select(con, """SELECT path, hash, size FROM artifacts
            WHERE kind = 'file' AND parent_hash = ? AND run_id = ? AND stage = ? ORDER BY path""",
                        [digest, first["run_id"], first["stage"]])
    made = _select(con, """SELECT run_id, stage, attempt, state, cached, cache_key, peak_bytes,
            duration FROM stages WHERE output_hash = ? ORDER BY finished DESC NULLS LAST
            LIMIT ?""", [dir_hash, limit])
    return {"hash": digest, "kind": first["kind"], "size": first["size"],
            "dir_hash": dir_hash, "occurrences": occ[:limit], "occurrence_count": len(occ),
            "produced_by": made, "consumed_by": consumers, "files": files}


# -- trace --------------------------------------------------------------------------------


def trace(con: Any, digest: str) -> dict[str, Any]:
    """The whole upstream DAG of an artifact: every input at every merge, with provenance.

    The walk happens inside one run that produced the artifact (the newest that computed
    it, else the newest that took it from the cache), because a stage's inputs are
    materialised in its own run; a cached hop also names the run that first computed it
    (``origin_run_id``), whose provenance is included.
    """
    occ = occurrences(con, digest)
    computed = _computed(con, {(o["run_id"], o["stage"]) for o in occ})
    art = next((o for o in occ if (o["run_id"], o["stage"]) in computed), occ[0])
    run_id, root_stage = art["run_id"], art["stage"]
    stage_rows = _select(con, f"""
        SELECT {', '.join(HOP_FIELDS)} FROM stages WHERE run_id = ?
        AND state IN ('ok', 'cached') AND output_hash IS NOT NULL""", [run_id])
    by_stage: dict[str, dict[str, Any]] = {}
    for r in sorted(stage_rows, key=lambda r: r["attempt"]):
        by_stage[r["stage"]] = r
    inputs: dict[str, list[dict[str, Any]]] = {}
    for e in _select(con, "SELECT stage, input_stage, input_hash FROM edges WHERE run_id = ? "
                          "ORDER BY stage, input_stage", [run_id]):
        inputs.setdefault(e["stage"], []).append({"stage": e["input_stage"],
                                                  "hash": e["input_hash"]})
    hops: list[dict[str, Any]] = []
    seen: set[str] = set()
    queue: deque[tuple[str, int]] = deque([(root_stage, 0)])
    while queue:
        name, depth = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        row = by_stage.get(name, {"run_id": run_id, "stage": name, "state": "unknown"})
        hop_inputs = inputs.get(name, [])
        hops.append({"depth": depth, **{f: row.get(f) for f in HOP_FIELDS},
                     "inputs": hop_inputs, "origin_run_id": None})
        for inp in hop_inputs:
            queue.append((inp["stage"], depth + 1))
    cached = sorted({h["output_hash"] for h in hops if h["cached"] and h["output_hash"]})
    if cached:
        made = _select(con, f"""SELECT hash, run_id, stage, produced FROM artifacts
            WHERE kind = 'dir' AND hash IN ({', '.join('?' * len(cached))})""", cached)
        computed = _computed(con, {(m["run_id"], m["stage"]) for m in made})
        origin: dict[str, tuple[float, str]] = {}
        for m in made:
            if (m["run_id"], m["stage"]) in computed:
                first = (m["produced"] or 0.0, m["run_id"])
                origin[m["hash"]] = min(origin.get(m["hash"], first), first)
        for h in hops:
            if h["cached"] and h["output_hash"] in origin:
                h["origin_run_id"] = origin[h["output_hash"]][1]
    wanted = sorted({run_id} | {h["origin_run_id"] for h in hops if h["origin_run_id"]})
    runs = {r["run_id"]: r for r in _select(con, f"""
        SELECT {', '.join(RUN_FIELDS)} FROM runs
        WHERE run_id IN ({', '.join('?' * len(wanted))})""", wanted)}
    return {"artifact": {f: art[f] for f in ARTIFACT_FIELDS}, "occurrence_count": len(occ),
            "hops": hops, "runs": runs}


def _computed(con: Any, places: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(run_id, stage)`` places really ran (rather than took the cache)."""
    places = sorted(set(places))
    if not places:
        return set()
    runs = sorted({r for r, _ in places})
    rows = con.execute(f"""SELECT run_id, stage FROM stages WHERE run_id IN
        ({', '.join('?' * len(runs))}) AND state = 'ok' AND NOT cached""", runs).fetchall()
    return {(r, s) for r, s in rows} & set(places)


def graph(traced: dict[str, Any]) -> dict[str, Any]:
    """Nodes (artifacts and stages) and edges (artifact → stage → artifact) of a trace."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []
    art = traced["artifact"]
    if art["kind"] == "file":
        nodes[f"artifact:{art['hash']}"] = {"id": f"artifact:{art['hash']}", "type": "artifact",
                                            "kind": "file", "hash": art["hash"],
                                            "label": art["path"]}
    for hop in traced["hops"]:
        sid = f"stage:{hop['run_id']}/{hop['stage']}"
        nodes[sid] = {"id": sid, "type": "stage", "stage": hop["stage"], "run_id": hop["run_id"],
                      "state": hop["state"], "peak_bytes": hop["peak_bytes"]}
        if hop["output_hash"]:
            aid = f"artifact:{hop['output_hash']}"
            nodes[aid] = {"id": aid, "type": "artifact", "kind": "dir",
                          "hash": hop["output_hash"], "label": f"{hop['stage']}/out"}
            edges.append({"from": sid, "to": aid})
        for inp in hop["inputs"]:
            if inp["hash"]:
                edges.append({"from": f"artifact:{inp['hash']}", "to": sid})
    if art["kind"] == "file" and art["parent_hash"]:
        edges.append({"from": f"artifact:{art['parent_hash']}", "to": f"artifact:{art['hash']}"})
    return {"root": art["hash"], "nodes": list(nodes.values()), "edges": edges}


def to_dot(g: dict[str, Any]) -> str:
    def q(text: Any) -> str:
        return '"' + str(text).replace('"', '\\"') + '"'

    lines = ["digraph lineage {", "  rankdir=LR;"]
    for n in g["nodes"]:
        if n["type"] == "stage":
            lines.append(f"  {q(n['id'])} [shape=box, label={q(n['stage'] + ' (' + str(n['state']) + ')')}];")
        else:
            label = q(f"{n['label']}\\n{n['hash'][:12]}")
            style = ", style=bold" if n["hash"] == g["root"] else ""
            lines.append(f"  {q(n['id'])} [shape=ellipse, label={label}{style}];")
    lines += [f"  {q(e['from'])} -> {q(e['to'])};" for e in g["edges"]]
    lines.append("}")
    return "\n".join(lines)


# -- cache --------------------------------------------------------------------------------


def cache_counts(con: Any, stages: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Cache hits and misses per stage name over every indexed run."""
    rows = con.execute("""
        SELECT stage, count(*) FILTER (WHERE cached) AS hits,
               count(DISTINCT run_id) FILTER (WHERE NOT cached AND cache_key IS NOT NULL) AS misses
        FROM stages GROUP BY stage ORDER BY stage""").fetchall()
    return {s: {"hits": int(h), "misses": int(m)} for s, h, m in rows}
