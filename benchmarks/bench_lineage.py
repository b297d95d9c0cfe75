"""Lineage benchmarks: ingest, trace and list over a large index, reindex of run directories.

Run ``python benchmarks/bench_lineage.py`` (or import and call :func:`main`). It prints
medians of whole-process command runs next to ``blut --version`` (answered before plugins
load) and ``blut --help`` / ``blut plugins list --json`` (plugins loaded) measured the same
way, so start-up cost is visible as a baseline. Targets: ingest of a 100-stage run ≤ 50 ms;
with 10,000 runs × 20 stages indexed, ``blut lineage trace`` and ``blut runs list --json``
≤ 300 ms; reindex of 1,000 run directories ≤ 10 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOST = {"host": "bench", "cpu_model": "bench cpu", "cores": 2, "ram_bytes": 24 << 30,
        "gpus": [], "blut_version": "0.1.0", "python": "3.11",
        "blut_git": {"commit": "b" * 40, "dirty": False, "root": "/blut"},
        "recipe_git": {"commit": "c" * 40, "dirty": False, "root": "/recipes"},
        "plugins": [{"name": f"p{i}", "distribution": "blut", "version": "0.1.0", "state": "ok"}
                    for i in range(8)]}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _inputs(s: int) -> list[int]:
    """A chain with a merge every fifth stage (stage s reads s-1, and s-3 when s % 5 == 0)."""
    if s == 0:
        return []
    return [s - 1, s - 3] if s % 5 == 0 and s >= 3 else [s - 1]


def write_run_dir(home: Path, run_id: str, stages: int, t0: float, *, seed: str = "") -> None:
    """A run directory shaped like a real one, with cache entries holding its manifests."""
    run = home / "runs" / run_id
    (run / "stages").mkdir(parents=True)
    names = [f"s{i:03d}" for i in range(stages)]
    plan = {"recipe": "bench:chain", "stages": [
        {"name": n, "inputs": [names[j] for j in _inputs(i)], "params": {"i": i}, "cache": True}
        for i, n in enumerate(names)]}
    (run / "plan.json").write_text(json.dumps(plan))
    (run / "params.json").write_text(json.dumps({"stages": stages, "seed": seed}))
    (run / "provenance.json").write_text(json.dumps({**HOST, "recipe": "bench:chain",
                                                     "launcher": "local", "created": t0}))
    (run / "driver.json").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": t0}))
    events: list[dict[str, Any]] = [{"event": "run_started", "t": t0, "run_id": run_id,
                                     "recipe": "bench:chain", "launcher": "local",
                                     "stages": names}]
    t = t0
    for i, n in enumerate(names):
        key = _sha(f"key{seed}{run_id}{i}")
        out_hash = _sha(f"out{seed}{run_id}{i}")
        out = run / "stages" / n / "out"
        out.mkdir(parents=True)
        body = f"{run_id} {n}\n".encode()
        (out / "result.txt").write_bytes(body)
        manifest = [["result.txt", hashlib.sha256(body).hexdigest(), len(body)]]
        entry = home / "cache" / key[:2] / key
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "meta.json").write_text(json.dumps({
            "key": key, "stage": n, "output_hash": out_hash, "size": len(body), "files": 1,
            "created": t, "manifest": manifest}))
        events += [
            {"event": "stage_admitted", "t": t, "stage": n, "attempt": 1, "decision": "admit",
             "footprint_bytes": 1 << 28, "cap_bytes": 1 << 29, "knobs": {}, "waited": 0.0,
             "reason": ""},
            {"event": "stage_started", "t": t, "stage": n, "attempt": 1, "cache_key": key,
             "job_id": str(i), "pid": 1000 + i, "cap_bytes": 1 << 29, "launcher": "local"},
            {"event": "stage_metric", "t": t + 0.1, "stage": n, "attempt": 1, "step": 1,
             "values": {"loss": 1.0 / (i + 1)}},
            {"event": "stage_finished", "t": t + 0.2, "stage": n, "attempt": 1, "state": "ok",
             "classification": "ok", "returncode": 0, "duration": 0.2, "peak_bytes": 1 << 27,
             "cap_bytes": 1 << 29, "output_hash": out_hash, "cache_key": key, "error": None}]
        t += 0.25
    events.append({"event": "run_finished", "t": t, "outcome": "ok", "wall": t - t0,
                   "counts": {"ok": stages}})
    (run / "status.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def fill_index(home: Path, runs: int, stages: int) -> tuple[str, str]:
    """``runs`` × ``stages`` synthetic runs straight into the database (SQL, seconds)."""
    import duckdb

    from blut_plugins.duckdb import DuckDBLineage, migrate

    store = DuckDBLineage(home)
    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(store.path))
    migrate(con, store.path)
    t0 = time.time() - runs * 60
    rid = "'bench-' || lpad(r::VARCHAR, 6, '0')"
    name = "'s' || lpad(s::VARCHAR, 3, '0')"
    out = "sha256('out' || r || '-' || s)"
    con.execute(f"""INSERT INTO runs BY NAME SELECT {rid} AS run_id, 'bench:chain' AS recipe,
        sha256('p' || (r % 50)) AS params_fingerprint, '{{"seed": 1}}' AS params,
        CASE WHEN r % 17 = 0 THEN 'failed' ELSE 'ok' END AS outcome,
        {t0} + r * 60 AS started, {t0} + r * 60 + 5 AS ended, 5.0 AS wall,
        '{"c" * 40}' AS recipe_commit, false AS recipe_dirty, '{"b" * 40}' AS blut_commit,
        '0.1.0' AS blut_version, 'bench' AS host, 2 AS cores, {24 << 30} AS ram_bytes,
        'local' AS launcher, '{home}/runs/' || {rid} AS run_dir, {stages} AS stage_count,
        '{{"ok": {stages}}}' AS counts FROM range({runs}) t(r)""")
    con.execute(f"""INSERT INTO stages BY NAME SELECT {rid} AS run_id, {name} AS stage,
        1 AS attempt, 'ok' AS state, 'ok' AS classification, false AS cached, false AS retried,
        'admit' AS decision, 0.0 AS waited, {1 << 29} AS cap_bytes, {1 << 27} AS peak_bytes,
        0.2 AS duration, {t0} + r * 60 + s * 0.25 AS finished, sha256('key' || r || '-' || s) AS cache_key,
        {out} AS output_hash FROM range({runs}) a(r), range({stages}) b(s)""")
    # ordered by hash, as `blut lineage reindex` writes them
    con.execute(f"""INSERT INTO artifacts BY NAME SELECT * FROM (
        SELECT {rid} AS run_id, {name} AS stage,
        'dir' AS kind, {out} AS hash, 64 AS size, 2 AS files, 'out' AS path, NULL AS parent_hash,
        {t0} + r * 60 + s * 0.25 AS produced FROM range({runs}) a(r), range({stages}) b(s)
        UNION ALL
        SELECT {rid} AS run_id, {name} AS stage,
        'file' AS kind, sha256('file' || r || '-' || s || '-' || k) AS hash, 32 AS size,
        NULL AS files, 'f' || k || '.txt' AS path, {out} AS parent_hash,
        {t0} + r * 60 + s * 0.25 AS produced
        FROM range({runs}) a(r), range({stages}) b(s), range(2) c(k)) ORDER BY hash""")
    for lag, cond in ((1, "s >= 1"), (3, "s % 5 = 0 AND s >= 3")):
        con.execute(f"""INSERT INTO edges BY NAME SELECT {rid} AS run_id,
            {name} AS stage, 's' || lpad((s - {lag})::VARCHAR, 3, '0') AS input_stage,
            sha256('out' || r || '-' || (s - {lag})) AS input_hash, {out} AS output_hash
            FROM range({runs}) a(r), range({stages}) b(s) WHERE {cond}""")
    con.execute(f"""INSERT INTO metrics BY NAME SELECT {rid} AS run_id, {name} AS stage,
        1 AS attempt, 1 AS step, 'loss' AS name, 1.0 / (1 + r + s) AS value,
        {t0} + r * 60 + s * 0.25 AS t, true AS final FROM range({runs}) a(r), range({stages}) b(s)""")
    last = runs - 1
    digest = con.execute(f"SELECT sha256('out' || {last} || '-' || {stages - 1})").fetchone()[0]
    con.close()
    runs_root = home / "runs"
    runs_root.mkdir(exist_ok=True)
    for r in range(runs):        # the run directories exist too (runs list scans their names)
        (runs_root / f"bench-{r:06d}").mkdir(exist_ok=True)
    return digest, f"bench-{last:06d}"


def timed(argv: Sequence[str], env: dict[str, str], repeat: int) -> float:
    """Median wall seconds of ``repeat`` whole-process runs of ``argv``."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    return statistics.median(samples)


def bench_ingest(root: Path, repeat: int = 15) -> dict[str, float]:
    """Medians of ingesting ``repeat`` new 100-stage runs, one at a time, into an existing DB.

    Each sample is what a run's end costs: read the run directory, then attach the database
    to the writers' engine, write one transaction and detach it. As in ``blut run``, the
    engine (DuckDB import and in-memory instance) was started when the run started
    (``prepare()``); what that costs is measured separately (``ingest_engine_start_s``),
    as is the mean, which includes the checkpoints of the write-ahead log.
    """
    from blut_core.lineage.extract import extract_run
    from blut_plugins.duckdb import DuckDBLineage, engine

    start = time.perf_counter()
    engine().connect(":memory:", config={"threads": "1"}).close()
    cold = time.perf_counter() - start       # import + one instance, as a run start pays it
    home = root / "ingest"
    for i in range(20):                       # a database that already holds some runs
        write_run_dir(home, f"r{i:03d}", 20, time.time())
    store = DuckDBLineage(home)
    store.rebuild(extract_run(p) for p in sorted((home / "runs").iterdir()))
    for i in range(repeat):
        write_run_dir(home, f"big{i:03d}", 100, time.time())
    start = time.perf_counter()
    store.prepare()                           # what `blut run` does when the run starts
    with store.writer():                      # waits for the engine; attach + detach
        pass
    warm = time.perf_counter() - start
    reads, writes, totals = [], [], []
    for i in range(repeat):
        start = time.perf_counter()
        lineage = extract_run(home / "runs" / f"big{i:03d}")
        read = time.perf_counter()
        store.ingest(lineage)
        done = time.perf_counter()
        reads.append(read - start)
        writes.append(done - read)
        totals.append(done - start)
    again = []
    for _ in range(5):
        start = time.perf_counter()
        store.ingest(extract_run(home / "runs" / "big000"))
        again.append(time.perf_counter() - start)
    return {"ingest_100_stages_s": statistics.median(totals),
            "ingest_100_stages_mean_s": statistics.mean(totals),
            "ingest_100_stages_max_s": max(totals),
            "ingest_read_s": statistics.median(reads),
            "ingest_write_s": statistics.median(writes),
            "ingest_engine_start_s": cold, "ingest_first_writer_s": warm,
            "reingest_100_stages_s": statistics.median(again)}


def compile_bytecode() -> None:
    """Write blut's bytecode, as an installation has it (PYTHONDONTWRITEBYTECODE=1 would
    otherwise leave edited modules to be compiled again by every timed process)."""
    import compileall

    here = Path(__file__).resolve().parent.parent
    for package in ("blut_core", "blut_plugins"):
        compileall.compile_dir(str(here / package), quiet=1)


def breakdown(db: Path, env: dict[str, str], repeat: int) -> dict[str, float]:
    """Whole-process floors: interpreter, DuckDB import (engine, package), engine + connect."""
    from blut_plugins.duckdb import engine

    py = sys.executable
    name = engine().__name__                  # what the commands import: _duckdb, else duckdb
    connect = (f"import {name}; {name}.connect({str(db)!r}, read_only=True, "
               f"config={{'threads': '1'}}).close()")
    return {"python_s": timed([py, "-c", "pass"], env, repeat),
            "import_click_s": timed([py, "-c", "import click"], env, repeat),
            "import_engine_s": timed([py, "-c", f"import {name}"], env, repeat),
            "import_duckdb_s": timed([py, "-c", "import duckdb"], env, repeat),
            "engine_connect_s": timed([py, "-c", connect], env, repeat)}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    repeat = 11
    blut = [sys.executable, "-m", "blut_core"] if os.environ.get("BLUT_BENCH_MODULE") else ["blut"]
    results: dict[str, float] = {}
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="blut-bench-") as tmp:
        root = Path(tmp)
        results.update(bench_ingest(root))
        print(f"ingest of a new 100-stage run into an existing DB: "
              f"{results['ingest_100_stages_s'] * 1000:.1f} ms (median of 15; target ≤ 50 ms; "
              f"mean {results['ingest_100_stages_mean_s'] * 1000:.1f} ms with checkpoints, "
              f"max {results['ingest_100_stages_max_s'] * 1000:.1f} ms)")
        print(f"  read the run directory {results['ingest_read_s'] * 1000:.1f} ms, "
              f"DuckDB attach + write + detach {results['ingest_write_s'] * 1000:.1f} ms; "
              f"re-ingest of a known run {results['reingest_100_stages_s'] * 1000:.1f} ms")
        print(f"  paid when the run starts, in the background: DuckDB import + engine start "
              f"{results['ingest_engine_start_s'] * 1000:.1f} ms (first writer, waiting for it: "
              f"{results['ingest_first_writer_s'] * 1000:.1f} ms)")

        big = root / "big"
        start = time.perf_counter()
        digest, _ = fill_index(big, 10_000, 20)
        print(f"generated 10,000 runs × 20 stages in the index in {time.perf_counter() - start:.1f} s")
        env = {**os.environ, "BLUT_HOME": str(big), "BLUT_NO_STALE_CHECK": "1"}
        base = timed([*blut, "--version"], env, repeat)
        helped = timed([*blut, "--help"], env, repeat)
        plugins = timed([*blut, "plugins", "list", "--json"], env, repeat)
        listing = timed([*blut, "runs", "list", "--json"], env, repeat)
        trace = timed([*blut, "lineage", "trace", digest[:12]], env, repeat)
        results.update(version_s=base, help_s=helped, plugins_list_s=plugins,
                       runs_list_s=listing, trace_s=trace)
        floors = breakdown(big / "lineage.duckdb", env, repeat)
        results.update(floors)
        print(f"median of {repeat} whole-process runs:")
        print(f"  blut --version            {base * 1000:7.1f} ms  (answered before plugins load)")
        print(f"  blut --help               {helped * 1000:7.1f} ms  (plugins loaded: baseline)")
        print(f"  blut plugins list --json  {plugins * 1000:7.1f} ms")
        for label, value in (("runs list --json", listing), ("lineage trace", trace)):
            print(f"  blut {label:20s} {value * 1000:7.1f} ms  (+{(value - helped) * 1000:.1f} ms"
                  f" over --help, ×{value / helped:.2f}; over --version ×{value / base:.2f}; "
                  f"target ≤ 300 ms)")
        from blut_core.lineage.extract import extract_run
        from blut_plugins.duckdb import DuckDBLineage

        store = DuckDBLineage(big)
        for i in range(2):                    # a write-ahead log as writers leave it
            write_run_dir(big, f"wal-{i}", 100, time.time())
            store.ingest(extract_run(big / "runs" / f"wal-{i}"))
        wal = os.path.getsize(f"{store.path}.wal") if os.path.exists(f"{store.path}.wal") else 0
        results["trace_wal_s"] = timed([*blut, "lineage", "trace", digest[:12]], env, repeat)
        results["runs_list_wal_s"] = timed([*blut, "runs", "list", "--json"], env, repeat)
        print(f"  with {wal >> 10} KiB of write-ahead log: lineage trace "
              f"{results['trace_wal_s'] * 1000:.1f} ms, runs list --json "
              f"{results['runs_list_wal_s'] * 1000:.1f} ms")
        print("  breakdown (whole-process medians):")
        for key, label in (("python_s", "python -c pass"), ("import_click_s", "import click"),
                           ("import_engine_s", "import the DuckDB engine (_duckdb)"),
                           ("import_duckdb_s", "import duckdb (the package)"),
                           ("engine_connect_s", "engine + read-only connect + close")):
            print(f"    {label:38s} {floors[key] * 1000:7.1f} ms")
        print(f"    floor of a DB command ≈ blut --help + engine + connect − python: "
              f"{(helped + floors['engine_connect_s'] - floors['python_s']) * 1000:.1f} ms")

        dirs = root / "dirs"
        start = time.perf_counter()
        t0 = time.time() - 86400
        for r in range(1000):
            write_run_dir(dirs, f"run-{r:05d}", 20, t0 + r * 10)
        print(f"generated 1,000 run directories × 20 stages in {time.perf_counter() - start:.1f} s")
        env = {**os.environ, "BLUT_HOME": str(dirs), "BLUT_NO_STALE_CHECK": "1"}
        reindex = timed([*blut, "lineage", "reindex"], env, 3)
        results["reindex_1000_s"] = reindex
        print(f"  blut lineage reindex (1,000 dirs) {reindex:.2f} s  (median of 3; target ≤ 10 s)")
    return results


if __name__ == "__main__":
    main()
