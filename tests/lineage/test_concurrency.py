"""Readers while a writer holds the database; concurrent ingests both land."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from blut_plugins.duckdb import DuckDBLineage

HOLD = """
import sys, time
from pathlib import Path
from blut_plugins.duckdb import DuckDBLineage
with DuckDBLineage(Path(sys.argv[1])).writer() as con:
    con.execute("SELECT count(*) FROM runs").fetchall()
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""

INGEST = """
import sys
from pathlib import Path
from blut_core.host.app import App
from blut_core.lineage.ingest import check_sinks, ingest
app = App.from_environment()
sys.exit(0 if ingest(app, Path(sys.argv[1]), check_sinks(app)) == 1 else 1)
"""


def _hold(home: object, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_cli_readers_wait_for_a_writer_and_succeed(run, blut_home, cli_env) -> None:  # type: ignore[no-untyped-def]
    summary = run("lbook:merge")
    merged = next(s.output_hash for s in summary.stages if s.stage == "merged")
    holder = _hold(blut_home, 1.5)
    started = time.monotonic()
    readers = [subprocess.Popen(args, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for args in (["blut", "runs", "list", "--json"],
                            ["blut", "lineage", "trace", merged[:12], "--json"])]
    outs = [r.communicate(timeout=60) for r in readers]
    assert holder.wait(timeout=30) == 0
    assert [r.returncode for r in readers] == [0, 0], [o[1] for o in outs]
    assert time.monotonic() - started > 1.0          # they waited for the writer, then read
    assert [r["run_id"] for r in json.loads(outs[0][0])] == [summary.run_id]
    assert {h["stage"] for h in json.loads(outs[1][0])["hops"]} == {"merged", "left", "right",
                                                                     "source"}


def test_concurrent_ingests_wait_and_both_land(run, blut_home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLUT_LINEAGE_SINKS", "none")
    a = run("lbook:merge")
    b = run("lbook:merge", "n=7")
    assert not (blut_home / "lineage.duckdb").exists()
    DuckDBLineage(blut_home).rebuild([])                 # an empty database, then a writer holds it
    holder = _hold(blut_home, 1.0)
    monkeypatch.setenv("BLUT_LINEAGE_SINKS", "duckdb")
    writers = [subprocess.Popen([sys.executable, "-c", INGEST, str(s.run_dir)],
                                stderr=subprocess.PIPE, text=True) for s in (a, b)]
    errors = [w.communicate(timeout=60)[1] for w in writers]
    assert holder.wait(timeout=30) == 0
    assert [w.returncode for w in writers] == [0, 0], errors
    with DuckDBLineage(blut_home).reader() as con:
        ids = sorted(r[0] for r in con.execute("SELECT run_id FROM runs").fetchall())
    assert ids == sorted([a.run_id, b.run_id])


def test_a_reader_holding_the_file_makes_a_writer_wait_not_fail(run, blut_home) -> None:  # type: ignore[no-untyped-def]
    run("lbook:merge")
    reader = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\n"
        "from blut_plugins.duckdb import DuckDBLineage\n"
        "with DuckDBLineage(Path(sys.argv[1])).reader() as con:\n"
        "    print('reading', flush=True)\n    time.sleep(1.0)\n"), str(blut_home)],
        stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
    summary = run("lbook:merge", "n=9")                 # ingests at its end: waits for the reader
    assert reader.wait(timeout=30) == 0
    with DuckDBLineage(blut_home).reader() as con:
        assert con.execute("SELECT count(*) FROM runs WHERE run_id = ?",
                           [summary.run_id]).fetchone()[0] == 1
