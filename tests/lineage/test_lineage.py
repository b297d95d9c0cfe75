"""Lineage: ingest at the end of every run, reindex, trace, diff, migrations, sinks, cache and artifacts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from blut_core.errors import ConfigError
from blut_core.lineage.model import TABLES
from blut_core.run.orchestrate import prepare, start_run
from blut_plugins.duckdb import SCHEMA_VERSION, DuckDBLineage
from tests.lineage.conftest import as_json


def snapshot(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    with DuckDBLineage(home).reader() as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def out_hash(summary: Any, stage: str) -> str:
    return next(s.output_hash for s in summary.stages if s.stage == stage)


def test_reindex_gives_the_rows_of_live_ingest_and_restores_a_deleted_db(run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    first = run("lbook:merge")
    run("lbook:merge")                    # all cached
    run("lbook:merge", "left=5")          # left and merged recomputed
    failed = run("lbook:failing")
    assert first.outcome == "ok" and failed.outcome == "failed"
    live = snapshot(blut_home)
    assert len(live["runs"]) == 4
    assert {r[0]: r[4] for r in live["runs"]}[failed.run_id] == "failed"
    (blut_home / "lineage.duckdb").unlink()
    data = as_json(invoke("lineage", "reindex", "--json"))
    assert data["runs"] == 4 and data["skipped"] == []
    assert snapshot(blut_home) == live
    as_json(invoke("lineage", "reindex", "--json"))           # idempotent
    assert snapshot(blut_home) == live


def test_trace_walks_every_input_of_a_merge(run, invoke) -> None:  # type: ignore[no-untyped-def]
    summary = run("lbook:merge")
    merged = out_hash(summary, "merged")
    t = as_json(invoke("lineage", "trace", merged[:10], "--json"))
    hops = {h["stage"]: h for h in t["hops"]}
    assert set(hops) == {"merged", "left", "right", "source"}
    assert {i["stage"] for i in hops["merged"]["inputs"]} == {"left", "right"}
    assert {i["hash"] for i in hops["merged"]["inputs"]} == {out_hash(summary, "left"),
                                                              out_hash(summary, "right")}
    assert hops["source"]["depth"] == 2 and hops["source"]["inputs"] == []
    prov = t["runs"][summary.run_id]
    assert prov["recipe"] == "lbook:merge" and prov["host"] and prov["params_fingerprint"]
    # a file hash traces through its directory
    files = as_json(invoke("artifacts", "ls", summary.run_id, "--json"))["artifacts"]
    readme = next(a for a in files if a["kind"] == "file" and a["path"] == "readme.txt")
    t2 = as_json(invoke("lineage", "trace", readme["hash"][:12], "--json"))
    assert t2["artifact"]["kind"] == "file" and [h["stage"] for h in t2["hops"]] == ["source"]
    g = as_json(invoke("lineage", "graph", merged, "--json"))
    assert {n["stage"] for n in g["nodes"] if n["type"] == "stage"} == set(hops)
    dot = invoke("lineage", "graph", merged)
    assert dot.exit_code == 0 and dot.output.startswith("digraph lineage {")


def test_unknown_or_ambiguous_hash_prefix_is_one_clear_error(run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    from blut_core.lineage.model import RunLineage

    run("lbook:merge")
    fake = RunLineage(run={"run_id": "fake", "outcome": "ok"}, artifacts=tuple(
        {"run_id": "fake", "stage": s, "kind": "dir", "hash": h, "path": s}
        for s, h in (("x", "abcd" + "1" * 60), ("y", "abcd" + "2" * 60))))
    DuckDBLineage(blut_home).ingest(fake)
    result = invoke("lineage", "trace", "abcd")
    assert isinstance(result.exception, ConfigError)
    assert "ambiguous" in result.exception.message and "abcd1111" in (result.exception.hint or "")
    result = invoke("lineage", "trace", "ffff0000")
    assert isinstance(result.exception, ConfigError) and "no indexed artifact" in result.exception.message


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_diff_of_runs_differing_in_params_and_in_code(tmp_path, monkeypatch, app, invoke) -> None:  # type: ignore[no-untyped-def]
    """The recipe lives in a temporary git repository; the second run is of a new commit."""
    from importlib import metadata as md

    from blut_core import App
    from blut_core.host import make_plugin_manager
    from blut_core.run.orchestrate import prepare, start_run
    from blut_core.testing import COOKBOOK_GROUP, builtin_entry_points

    repo = tmp_path / "recipes"
    repo.mkdir()
    module = f"lineage_diff_{tmp_path.name.replace('-', '_')}"
    source = (Path(__file__).parent / "book.py").read_text(encoding="utf-8").replace(
        'name="lbook"', 'name="dbook"')
    (repo / f"{module}.py").write_text(source, encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "-m", "one")
    monkeypatch.syspath_prepend(str(repo))
    monkeypatch.setenv("PYTHONPATH", str(repo))
    dbook = md.EntryPoint(name="dbook", value=module, group=COOKBOOK_GROUP)
    app = App(make_plugin_manager(entry_points=builtin_entry_points(), cookbook_entry_points=[dbook],
                                  strict=True), app.settings)
    a = start_run(app, prepare(app, "dbook:merge"))
    (repo / f"{module}.py").write_text(source.replace("total = sum(left) + sum(right)",
                                                      "total = sum(left) + 2 * sum(right)"))
    _git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qam", "two")
    b = start_run(app, prepare(app, "dbook:merge", overrides=["n=4"]))
    d = as_json(invoke("runs", "diff", a.run_id, b.run_id, "--json"))
    assert d["params"] == [{"key": "n", "a": 3, "b": 4}]
    commits = {p["key"]: p for p in d["provenance"]}
    assert commits["recipe_commit"]["a"] != commits["recipe_commit"]["b"]
    assert d["outcome"] == {"a": "ok", "b": "ok"}
    metrics = {m["key"]: m for m in d["metrics"]}
    assert metrics["merged.total"]["a"] == 15 and metrics["merged.total"]["b"] == 12 + 2 * 18
    assert [s["stage"] for s in d["stages"]] == ["left", "merged", "right", "source"]
    assert "peak_bytes" in d["stages"][0]["a"]
    text = invoke("runs", "diff", a.run_id, b.run_id)
    assert text.exit_code == 0 and "recipe_commit" in text.output and "params.n" in text.output


V1_DDL = """
CREATE TABLE blut_meta (key VARCHAR, value VARCHAR);
INSERT INTO blut_meta VALUES ('schema_version', '1');
CREATE TABLE runs (run_id VARCHAR, recipe VARCHAR, params_fingerprint VARCHAR, params VARCHAR,
  outcome VARCHAR, started DOUBLE, ended DOUBLE, wall DOUBLE, recipe_commit VARCHAR,
  recipe_dirty BOOLEAN, recipe_root VARCHAR, blut_commit VARCHAR, blut_dirty BOOLEAN,
  blut_version VARCHAR, python VARCHAR, host VARCHAR, cpu_model VARCHAR, cores BIGINT,
  ram_bytes BIGINT, gpu_name VARCHAR, gpu_memory_bytes BIGINT, gpu_count BIGINT,
  launcher VARCHAR, user_name VARCHAR, run_dir VARCHAR, stage_count BIGINT, counts VARCHAR);
CREATE TABLE plugins (run_id VARCHAR, name VARCHAR, distribution VARCHAR, version VARCHAR,
  state VARCHAR);
CREATE TABLE stages (run_id VARCHAR, stage VARCHAR, attempt BIGINT, state VARCHAR,
  classification VARCHAR, returncode BIGINT, cached BOOLEAN, retried BOOLEAN, decision VARCHAR,
  waited DOUBLE, admit_reason VARCHAR, knobs VARCHAR, footprint_bytes BIGINT, cap_bytes BIGINT,
  peak_bytes BIGINT, started DOUBLE, finished DOUBLE, duration DOUBLE, cache_key VARCHAR,
  output_hash VARCHAR, job_id VARCHAR, launcher VARCHAR, error VARCHAR);
CREATE TABLE artifacts (run_id VARCHAR, stage VARCHAR, kind VARCHAR, hash VARCHAR, size BIGINT,
  files BIGINT, path VARCHAR, parent_hash VARCHAR, produced DOUBLE);
CREATE TABLE edges (run_id VARCHAR, stage VARCHAR, input_stage VARCHAR, input_hash VARCHAR,
  output_hash VARCHAR);
CREATE TABLE metrics (run_id VARCHAR, stage VARCHAR, attempt BIGINT, step BIGINT, name VARCHAR,
  value DOUBLE, text_value VARCHAR, t DOUBLE, final BOOLEAN);
INSERT INTO runs (run_id, recipe, outcome, started, run_dir, counts)
  VALUES ('old-run', 'lbook:merge', 'ok', 1.0, '/nowhere/old-run', '{"ok": 4}');
"""


def test_a_database_of_an_older_schema_migrates(run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    blut_home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(blut_home / "lineage.duckdb"))
    for statement in V1_DDL.split(";"):
        if statement.strip():
            con.execute(statement)
    con.close()
    listed = as_json(invoke("runs", "list", "--json"))          # a reader migrates first
    assert [r["run_id"] for r in listed] == ["old-run"]
    status = as_json(invoke("lineage", "status", "--json"))
    assert status["duckdb"]["schema_version"] == SCHEMA_VERSION == 3
    summary = run("lbook:merge")                                # and the writer ingests
    with DuckDBLineage(blut_home).reader() as con:
        cols = [r[0] for r in con.execute("DESCRIBE runs").fetchall()]
        assert "containment" in cols and "schedule" in cols
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM calibration").fetchone()[0] == 0
    assert summary.outcome == "ok"


def test_a_database_from_a_newer_blut_is_refused(invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    blut_home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(blut_home / "lineage.duckdb"))
    con.execute("CREATE TABLE blut_meta (key VARCHAR, value VARCHAR)")
    con.execute("INSERT INTO blut_meta VALUES ('schema_version', '99')")
    con.close()
    result = invoke("runs", "top", "--metric", "loss")
    assert isinstance(result.exception, ConfigError)
    assert "schema version 99" in result.exception.message and "upgrade blut" in (result.exception.hint or "")


def test_damaged_run_directory_is_skipped_with_a_warning(run, blut_home, cli_env) -> None:  # type: ignore[no-untyped-def]
    good = run("lbook:merge")
    bad = blut_home / "runs" / "20200101-000000-broken-000000"
    bad.mkdir(parents=True)
    (bad / "plan.json").write_text("{not json", encoding="utf-8")
    proc = subprocess.run(["blut", "lineage", "reindex", "--json"], env=cli_env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["runs"] == 1 and [s["run_dir"] for s in data["skipped"]] == [str(bad)]
    assert "run_dir_skipped" in proc.stderr and "plan.json" in proc.stderr
    listed = json.loads(subprocess.run(["blut", "runs", "list", "--json"], env=cli_env,
                                       capture_output=True, text=True, check=True).stdout)
    assert good.run_id in [r["run_id"] for r in listed]


def test_a_failing_sink_never_fails_the_run(blut_home, cli_env) -> None:  # type: ignore[no-untyped-def]
    (blut_home / "lineage.duckdb").mkdir(parents=True)      # DuckDB cannot open a directory
    proc = subprocess.run(["blut", "run", "quickstart:wordcount", "-p", "docs=5"], env=cli_env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    warnings = [json.loads(line) for line in proc.stderr.splitlines()
                if '"lineage_sink_failed"' in line]
    assert len(warnings) == 1 and "reindex" in warnings[0]["hint"]
    assert "plugin_skipped" not in proc.stderr


def test_an_unknown_sink_stops_the_run_before_any_write(blut_home, cli_env, invoke, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    env = {**cli_env, "BLUT_LINEAGE_SINKS": "duckdb,nosuch", "BLUT_LOG_FORMAT": "console"}
    proc = subprocess.run(["blut", "run", "quickstart:wordcount", "-p", "docs=5"], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("Error: lineage sink 'nosuch'") and "not installed" in lines[0]
    assert any(line.startswith("Hint:") and "duckdb, jsonl" in line for line in lines)
    assert not (blut_home / "runs").exists() or not any((blut_home / "runs").iterdir())
    assert not (blut_home / "lineage.duckdb").exists()
    result = invoke("lineage", "reindex", "--sink", "nosuch")
    assert isinstance(result.exception, ConfigError) and "'nosuch'" in result.exception.message
    proc = subprocess.run(["blut", "lineage", "reindex", "--sink", "nosuch"], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: lineage sink 'nosuch'")
    monkeypatch.setenv("BLUT_LINEAGE_SINKS", "duckdb,nosuch")
    status = as_json(invoke("lineage", "status", "--json"))
    assert [s["ok"] for s in status["sinks"]] == [True, False]


def test_a_sink_whose_plugin_failed_to_load_names_its_error(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from blut_core.host.manager import PluginRecord
    from blut_core.lineage.ingest import check_sinks

    broken = PluginRecord(name="lineage-parquet", distribution="blut-parquet", version="0.3",
                          builtin=False, error="ImportError: no module named pyarrow")
    monkeypatch.setattr(app.pm, "records", [*app.pm.records, broken])
    monkeypatch.setenv("BLUT_LINEAGE_SINKS", "parquet")
    with pytest.raises(ConfigError) as err:
        check_sinks(app)
    assert "lineage sink 'parquet'" in err.value.message
    assert "lineage-parquet (blut-parquet 0.3) failed: ImportError" in err.value.message
    assert "duckdb" in (err.value.hint or "")
    with pytest.raises(ConfigError):
        start_run(app, prepare(app, "lbook:merge"))
    assert not (app.settings.runs_dir).exists() or not any(app.settings.runs_dir.iterdir())


def test_failed_and_resumed_runs_are_ingested_once_each_time(run, app, blut_home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """At the run's end (``at-end``): the sink's ingest is called once per run and resume."""
    from blut_core.run.resume import resume_run

    monkeypatch.setenv("BLUT_LINEAGE_INGEST", "at-end")
    failed = run("lbook:failing")
    assert failed.outcome == "failed"
    with DuckDBLineage(blut_home).reader() as con:
        assert con.execute("SELECT outcome FROM runs").fetchall() == [("failed",)]
    calls: list[str] = []
    monkeypatch.setattr(DuckDBLineage, "ingest",
                        lambda self, lineage, **kw: calls.append(lineage.run["outcome"]))
    resumed = resume_run(app, failed.run_id)
    assert resumed.run_id == failed.run_id and calls == [resumed.outcome]


def test_deferred_runs_are_caught_up_once_by_the_first_reader(run, app, blut_home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The default ``deferred``: a run's end (and a resume's) leaves a durable marker and no
    database; the first reader ingests it, with the outcome the run ended with, once."""
    from blut_core.lineage import pending_markers
    from blut_core.run.resume import resume_run

    failed = run("lbook:failing")
    assert failed.outcome == "failed"
    assert not (blut_home / "lineage.duckdb").exists()
    assert [m.stem for m in pending_markers(blut_home, "duckdb")] == [failed.run_id]
    with DuckDBLineage(blut_home).reader() as con:
        assert con.execute("SELECT run_id, outcome FROM runs").fetchall() == [(failed.run_id, "failed")]
    assert pending_markers(blut_home, "duckdb") == []
    resumed = resume_run(app, failed.run_id)
    assert [m.stem for m in pending_markers(blut_home, "duckdb")] == [failed.run_id]
    with DuckDBLineage(blut_home).reader() as con:
        assert con.execute("SELECT run_id, outcome FROM runs").fetchall() == [(failed.run_id,
                                                                               resumed.outcome)]
        before = con.execute("SELECT count(*) FROM stages").fetchone()[0]
    with DuckDBLineage(blut_home).reader() as con:      # nothing pending: nothing ingested again
        assert con.execute("SELECT count(*) FROM stages").fetchone()[0] == before


def test_jsonl_sink_writes_what_the_duckdb_sink_does(run, blut_home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLUT_LINEAGE_SINKS", "duckdb,jsonl")
    summary = run("lbook:merge")
    docs = [json.loads(line) for line in (blut_home / "lineage.jsonl").read_text().splitlines()]
    assert [d["run_id"] for d in docs] == [summary.run_id]
    with DuckDBLineage(blut_home).reader() as con:
        for table in TABLES:
            cur = con.execute(f"SELECT * FROM {table} WHERE run_id = ?", [summary.run_id])
            names = [c[0] for c in cur.description]
            db_rows = sorted(json.dumps(dict(zip(names, r, strict=True)), sort_keys=True)
                             for r in cur.fetchall())
            js_rows = sorted(json.dumps(r, sort_keys=True) for r in docs[0][table])
            assert db_rows == js_rows, table


def test_read_commands_and_their_json(run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    a = run("lbook:merge")
    b = run("lbook:merge", "right=7")
    run("lbook:failing")
    listed = as_json(invoke("runs", "list", "--json"))
    assert [r["run_id"] for r in listed][1:] == [b.run_id, a.run_id]
    assert set(listed[0]) >= {"run_id", "recipe", "state", "started", "ended", "wall", "path", "counts"}
    assert [r["run_id"] for r in as_json(invoke("runs", "list", "--outcome", "failed", "--json"))] \
        == [listed[0]["run_id"]]
    assert len(as_json(invoke("runs", "list", "--recipe", "merge", "--since", "1h", "--json"))) == 2
    assert as_json(invoke("runs", "list", "--since", "2999-01-01", "--json")) == []
    top = as_json(invoke("runs", "top", "--metric", "merged.total", "--json"))
    assert [(r["run_id"], r["value"]) for r in top] == [(b.run_id, 2 * 3 + 7 * 3), (a.run_id, 15)]
    assert [r["run_id"] for r in as_json(invoke("runs", "top", "--metric", "total", "--min", "--json"))] \
        == [a.run_id, b.run_id]
    m = as_json(invoke("metrics", a.run_id, "--json"))
    assert m["final"]["merged.total"] == 15 and m["final"]["left.loss"] == pytest.approx(1 / 5)
    assert [s["step"] for s in m["steps"] if s["stage"] == "left"] == [0, 1, 2]
    stats = as_json(invoke("cache", "stats", "--json"))
    per = {s["stage"]: s for s in stats["stages"]}
    assert per["source"]["hits"] == 1 and per["source"]["misses"] == 2
    assert per["right"]["misses"] == 2 and per["left"]["hits"] == 1 and per["source"]["bytes"] > 0
    run_stats = as_json(invoke("cache", "stats", b.run_id, "--json"))
    assert {s["stage"]: s["hits"] for s in run_stats["stages"]}["source"] == 1
    show = as_json(invoke("artifacts", "show", out_hash(a, "source")[:8], "--json"))
    assert show["kind"] == "dir" and {f["path"] for f in show["files"]} == {"numbers.json", "readme.txt"}
    assert show["occurrence_count"] == 2 and show["cache_entries"]      # ran in a, cached in b
    assert {(c["run_id"], c["stage"]) for c in show["consumed_by"]} == {
        (r, s) for r in (a.run_id, b.run_id) for s in ("left", "right")}
    shown = as_json(invoke("runs", "show", a.run_id, "--json"))
    assert shown["run_id"] == a.run_id and shown["params"] == {"n": 3, "left": 2, "right": 3}
    for args in (("runs", "list"), ("runs", "top", "--metric", "total"), ("metrics", a.run_id),
                 ("cache", "stats"), ("artifacts", "ls", a.run_id),
                 ("artifacts", "show", out_hash(a, "merged")[:8]), ("lineage", "status")):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output, result.exception)


def test_runs_list_without_a_database_falls_back_to_run_directories(  # type: ignore[no-untyped-def]
        run, invoke, blut_home, monkeypatch) -> None:
    monkeypatch.setenv("BLUT_LINEAGE_INGEST", "at-end")        # the run's end makes the database
    summary = run("lbook:merge")
    (blut_home / "lineage.duckdb").unlink()
    assert [r["run_id"] for r in as_json(invoke("runs", "list", "--json"))] == [summary.run_id]


def test_cache_gc_is_lru_and_keeps_entries_of_a_running_run(run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    """The running run is a hand-written run directory whose driver is this test process."""
    import os
    import time

    first = run("lbook:merge")
    run("lbook:merge", "n=5")
    keys = {s.stage: s.cache_key for s in first.stages}
    meta = {p.parent.name: p for p in (blut_home / "cache").glob("*/*/meta.json")}
    old = time.time() - 3600
    for n, path in enumerate(sorted(meta.values())):
        os.utime(path, (old + n, old + n))
    live = blut_home / "runs" / "20990101-000000-live-000000"
    live.mkdir()
    (live / "plan.json").write_text(json.dumps({"recipe": "lbook:merge", "stages": []}))
    from blut_core.store.rundir import StatusLog, _proc_start

    # the driver.json RunDir.create writes, naming this (alive) test process
    (live / "driver.json").write_text(json.dumps({
        "pid": os.getpid(), "host": __import__("socket").gethostname(), "started": time.time(),
        "create_time": _proc_start(os.getpid())}))
    log = StatusLog(live / "status.jsonl")
    log.append("run_started", run_id=live.name, recipe="lbook:merge", launcher="local",
               stages=["source"])
    log.append("stage_started", stage="source", attempt=1, cache_key=keys["source"])
    log.close()
    shown = as_json(invoke("runs", "show", live.name, "--json"))
    assert shown["state"] == "running"
    dry = as_json(invoke("cache", "gc", "--max-size", "0", "--dry-run", "--json"))
    assert dry["removed"] and len(meta) == len(list((blut_home / "cache").glob("*/*/meta.json")))
    lru = [r["key"] for r in dry["removed"]]
    assert lru == [k for k in sorted(meta, key=lambda k: os.stat(meta[k]).st_mtime)
                   if k != keys["source"]]
    data = as_json(invoke("cache", "gc", "--max-size", "0", "--json"))
    assert data["protected"] == 1 and data["running_runs"] == 1
    left = [p.parent.name for p in (blut_home / "cache").glob("*/*/meta.json")]
    assert left == [keys["source"]]
    result = invoke("cache", "gc", "--max-size", "lots")
    assert isinstance(result.exception, ConfigError)
    shutil.rmtree(live)


def test_cache_gc_removes_what_interrupted_stores_left_once_their_process_is_gone(
        run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess

    run("lbook:merge")
    kept = [p.parent for p in (blut_home / "cache").glob("*/*/meta.json")]
    shard = kept[0].parent
    dead = subprocess.Popen(["true"])  # a process that has exited: its pid names no process
    dead.wait()
    stale = shard / f".{'ab' * 32}.{dead.pid}.tmp"  # a driver killed while it stored this
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "part.bin").write_bytes(b"x" * 1000)
    aside = shard / f".gc-{'cd' * 32}-{dead.pid}"  # a gc killed while it removed this
    aside.mkdir()
    writing = shard / f".{'ef' * 32}.{os.getpid()}.tmp"  # a live process is storing this
    writing.mkdir()

    dry = as_json(invoke("cache", "gc", "--max-size", "100G", "--dry-run", "--json"))
    assert dry["leftovers"] == {"removed": 2, "bytes": 1000} and stale.exists()
    data = as_json(invoke("cache", "gc", "--max-size", "100G", "--json"))
    assert data["leftovers"] == {"removed": 2, "bytes": 1000} and data["removed"] == []
    assert not stale.exists() and not aside.exists() and writing.exists()
    assert all((k / "meta.json").exists() for k in kept)  # entries are left alone
    text = invoke("cache", "gc", "--max-size", "100G").output
    assert "leftover" not in text  # nothing left to say
    writing.rmdir()

def test_runs_list_names_the_schedule_that_fired_a_run(run, invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    """A fired schedule writes ``run_scheduled`` after ``run_started``; the listings show its name."""
    summary = run("lbook:merge")
    status = Path(summary.run_dir) / "status.jsonl"
    lines = status.read_text().splitlines(keepends=True)
    scheduled = json.dumps({"event": "run_scheduled", "t": json.loads(lines[0])["t"], "schedule": "nightly"})
    status.write_text(lines[0] + scheduled + "\n" + "".join(lines[1:]))
    assert as_json(invoke("lineage", "reindex", "--json")) is not None
    (row,) = as_json(invoke("runs", "list", "--json"))
    assert row["schedule"] == "nightly"
    listed = invoke("runs", "list")
    assert listed.exit_code == 0 and "lbook:merge (schedule nightly)" in listed.output
    (blut_home / "lineage.duckdb").unlink()                  # from the run directories alone, too
    (row,) = as_json(invoke("runs", "list", "--json"))
    assert row["schedule"] == "nightly"


DRIVER = """
import json, sys
from blut_core.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "engine": sorted(m for m in ("duckdb", "_duckdb") if m in sys.modules)}),
      file=sys.stderr)
"""


@pytest.mark.parametrize(("mode", "engine"), [(None, []), ("at-end", ["_duckdb"])])
def test_the_driver_of_a_run_loads_the_database_engine_only_to_ingest_at_the_end(  # type: ignore[no-untyped-def]
        blut_home, cli_env, mode, engine) -> None:
    """By default a run's end marks it pending (the engine's ~16 MB stay out of the driver);
    ``[lineage] ingest = "at-end"`` ingests then. Either way ``runs list`` shows the run."""
    env = {**cli_env, **({"BLUT_LINEAGE_INGEST": mode} if mode else {})}
    proc = subprocess.run([sys.executable, "-c", DRIVER, "run", "quickstart:wordcount", "-p", "docs=5",
                           "--no-progress"], env=env, capture_output=True, text=True, check=False)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "engine": engine}, proc.stderr
    assert (blut_home / "lineage.duckdb").exists() == bool(engine)
    listed = json.loads(subprocess.run(["blut", "runs", "list", "--json"], env=env, capture_output=True,
                                       text=True, check=True).stdout)
    assert [r["recipe"] for r in listed] == ["quickstart:wordcount"]
    with DuckDBLineage(blut_home).reader() as con:
        assert con.execute("SELECT recipe, outcome FROM runs").fetchall() == [("quickstart:wordcount", "ok")]


def test_a_bad_ingest_mode_stops_the_run_before_any_write(blut_home, cli_env) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run(["blut", "run", "quickstart:wordcount", "-p", "docs=5"],
                          env={**cli_env, "BLUT_LINEAGE_INGEST": "sometimes"},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Error: BLUT_LINEAGE_INGEST='sometimes' is not an ingest mode")
    assert not (blut_home / "runs").exists() or not any((blut_home / "runs").iterdir())


def test_a_pending_run_whose_directory_is_damaged_is_one_warning_then_forgotten(  # type: ignore[no-untyped-def]
        run, blut_home, cli_env) -> None:
    from blut_core.lineage import pending_markers

    good = run("lbook:merge")
    bad = run("lbook:merge", "n=5")
    (Path(bad.run_dir) / "plan.json").write_text("{not json")            # damaged after it ended
    gone = run("lbook:merge", "n=6")
    shutil.rmtree(gone.run_dir)                                          # pruned before anyone read
    assert len(pending_markers(blut_home, "duckdb")) == 3

    def runs_list() -> tuple[list[str], list[dict[str, Any]]]:
        proc = subprocess.run(["blut", "runs", "list", "--json"], env=cli_env, capture_output=True,
                              text=True, check=True)
        logged = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
        return [r["run_id"] for r in json.loads(proc.stdout)], logged

    _, logged = runs_list()
    failed = [e for e in logged if e["event"] == "lineage_ingest_failed"]
    assert [e["run"] for e in failed] == [bad.run_id] and "reindex" in failed[0]["hint"]
    assert pending_markers(blut_home, "duckdb") == []
    with DuckDBLineage(blut_home).reader() as con:
        assert [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()] == [good.run_id]
    _, logged = runs_list()                                               # said once, not again
    assert [e for e in logged if e["event"] == "lineage_ingest_failed"] == []


CATCH_UP = """
import sys, time
from pathlib import Path
from blut_plugins.duckdb import DuckDBLineage
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
print(DuckDBLineage(Path(sys.argv[1])).catch_up())
"""


def test_readers_at_once_catch_each_pending_run_up_once(run, blut_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from blut_core.lineage import extract_run, pending_markers

    dirs = [Path(run("lbook:merge", f"n={n}").run_dir) for n in range(3, 9)]
    ids = sorted(d.name for d in dirs)
    rows = sum(len(extract_run(d, cache_root=blut_home / "cache").stages) for d in dirs)
    assert len(pending_markers(blut_home, "duckdb")) == 6
    go = tmp_path / "go"
    readers = [subprocess.Popen([sys.executable, "-c", CATCH_UP, str(blut_home), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    time.sleep(0.5)
    go.touch()
    outs = [r.communicate(timeout=120) for r in readers]
    assert [r.returncode for r in readers] == [0, 0, 0], [o[1] for o in outs]
    assert sorted(int(o[0]) for o in outs) == [0, 0, 6]          # one of them ingested all six
    with DuckDBLineage(blut_home).reader() as con:
        assert sorted(r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()) == ids
        assert con.execute("SELECT count(DISTINCT run_id), count(*) FROM stages").fetchone() == (6, rows)
