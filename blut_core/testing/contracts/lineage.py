"""The contract every lineage sink keeps, as a pytest class to subclass.

::

    from blut_core.testing.contracts import LineageSinkContract

    class TestMySink(LineageSinkContract):
        sink_name = "mysink"                 # the name its LineageSinkSpec registers

        def stored(self, sink):              # run id -> table -> rows the sink holds
            return sink.row_counts()

The sink must be installed (its plugin an entry point of ``blut.plugins``), because the
suite runs real runs of ``contract:diamond`` (:mod:`blut_core.testing.book`) with
``BLUT_LINEAGE_SINKS`` naming it, and starts other processes that write to it. What is
checked: a real run is ingested at its end, every table with the rows the run directory
gives; ingesting it again changes nothing; ``rebuild`` replaces everything; a damaged run
directory is skipped by ``blut lineage reindex`` and by a run's own ingest, never fatal;
and several processes ingesting at once all land.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata as md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from blut_core.host.app import App
    from blut_core.lineage.model import LineageSink, RunLineage

__all__ = ["LineageSinkContract"]

_WORKER = r"""
import sys
from pathlib import Path
from blut_core.testing.contracts.lineage import ingest_when_told
ingest_when_told(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
"""


def ingest_when_told(sink_name: str, run_dir: Path, go: Path, ready: Path,
                     timeout: float = 60.0) -> None:
    """In a fresh process: load blut and the run, touch ``ready``, wait until ``go`` exists,
    then ingest ``run_dir`` into the sink (so that every writer starts at the same moment)."""
    import time

    from blut_core.host.app import App
    from blut_core.lineage.extract import extract_run
    from blut_core.lineage.sinks import open_sink

    app = App.from_environment()
    sink = open_sink(app.registry, sink_name, app.settings.home, records=app.pm.records)
    lineage = extract_run(run_dir, cache_root=app.settings.cache_dir)
    ready.touch()
    deadline = time.monotonic() + timeout
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.001)
    sink.ingest(lineage)


def _wait(check: Callable[[], bool], timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.005)


def _counts(lineage: RunLineage) -> dict[str, int]:
    return {table: len(rows) for table, rows in lineage.tables().items()}


class LineageSinkContract:
    """Tests a lineage sink keeps; set :attr:`sink_name` and implement :meth:`stored`."""

    #: the name the sink registers (``LineageSinkSpec.name``)
    sink_name: str = ""
    #: how many processes the concurrency test starts
    writers: int = 4

    def stored(self, sink: Any) -> Mapping[str, Mapping[str, int]]:
        """What ``sink`` holds now: run id -> table -> number of rows (tables of
        :data:`blut_core.lineage.model.TABLES`; a table without rows may be left out)."""
        raise NotImplementedError("implement stored(sink) in your test class")

    def plugin_entry_points(self) -> Iterable[md.EntryPoint] | None:
        """The plugins the suite's App loads (``None``: every installed one)."""
        return None

    # -- fixtures ------------------------------------------------------------------------

    @pytest.fixture
    def lineage_app(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
        """An App in a private home, feeding this sink alone, with the contract cookbook."""
        from blut_core.host.app import App
        from blut_core.host.manager import make_plugin_manager
        from blut_core.host.settings import Settings
        from blut_core.testing.book import ENTRY_POINT

        assert self.sink_name, "set sink_name in your test class"
        home = tmp_path / "home"
        monkeypatch.setenv("BLUT_HOME", str(home))
        monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")
        monkeypatch.setenv("BLUT_LINEAGE_SINKS", self.sink_name)
        pm = make_plugin_manager(entry_points=self.plugin_entry_points(),
                                 cookbook_entry_points=[ENTRY_POINT])
        app = App(pm, Settings.from_environ())
        if self.sink_name not in app.registry.lineage_sinks:
            pytest.fail(f"lineage sink {self.sink_name!r} is not installed (installed: "
                        f"{', '.join(app.registry.lineage_sinks) or 'none'})", pytrace=False)
        return app

    @pytest.fixture
    def run_diamond(self, lineage_app: App) -> Callable[..., Path]:
        """``run_diamond(n=…)``: a real run of ``contract:diamond``; returns its directory."""
        from blut_core.testing.running import RunRecipe

        def _run(**params: Any) -> Path:
            summary = RunRecipe(lineage_app)("contract:diamond", **params)
            assert summary.outcome == "ok", summary
            return Path(summary.run_dir)

        return _run

    def open(self, app: App) -> LineageSink:
        from blut_core.lineage.sinks import open_sink

        return open_sink(app.registry, self.sink_name, app.settings.home, records=app.pm.records)

    def lineage(self, app: App, run_dir: Path) -> RunLineage:
        from blut_core.lineage.extract import extract_run

        return extract_run(run_dir, cache_root=app.settings.cache_dir)

    def held(self, sink: Any) -> dict[str, dict[str, int]]:
        """:meth:`stored`, with tables that have no rows left out."""
        return {run: {t: n for t, n in tables.items() if n}
                for run, tables in self.stored(sink).items()}

    def expected(self, app: App, *run_dirs: Path) -> dict[str, dict[str, int]]:
        out = {}
        for path in run_dirs:
            lineage = self.lineage(app, path)
            out[lineage.run_id] = {t: n for t, n in _counts(lineage).items() if n}
        return out

    # -- the contract --------------------------------------------------------------------

    def test_a_real_run_is_ingested_when_it_ends(self, lineage_app: App,
                                                 run_diamond: Callable[..., Path]) -> None:
        run_dir = run_diamond()
        held = self.held(self.open(lineage_app))
        assert held == self.expected(lineage_app, run_dir)
        tables = held[run_dir.name]
        for table in ("runs", "stages", "artifacts", "edges", "metrics"):
            assert tables.get(table), f"the run has no rows in {table}: {tables}"

    def test_ingesting_a_run_again_changes_nothing(self, lineage_app: App,
                                                   run_diamond: Callable[..., Path]) -> None:
        first, second = run_diamond(n=5), run_diamond(n=7)
        sink = self.open(lineage_app)
        before = self.held(sink)
        for _ in range(2):
            sink.ingest(self.lineage(lineage_app, first))
        assert self.held(sink) == before == self.expected(lineage_app, first, second)

    def test_rebuild_replaces_everything(self, lineage_app: App,
                                         run_diamond: Callable[..., Path]) -> None:
        first, second = run_diamond(n=5), run_diamond(n=7)
        sink = self.open(lineage_app)
        counts = sink.rebuild(iter([self.lineage(lineage_app, second)]))
        assert self.held(sink) == self.expected(lineage_app, second)
        assert counts.get("runs") == 1, counts
        sink.rebuild(iter([self.lineage(lineage_app, first), self.lineage(lineage_app, second)]))
        assert self.held(sink) == self.expected(lineage_app, first, second)

    def test_a_damaged_run_directory_is_skipped_not_fatal(
            self, lineage_app: App, run_diamond: Callable[..., Path]) -> None:
        import click.testing

        from blut_core.cli.root import cli
        from blut_core.lineage.ingest import check_sinks, ingest
        from blut_core.store.rundir import STATUS

        good = run_diamond()
        runs = good.parent
        no_plan = runs / f"{good.name}-noplan"
        shutil.copytree(good, no_plan)
        (no_plan / "plan.json").write_text('{"stages": [', encoding="utf-8")
        torn = runs / f"{good.name}-torn"
        shutil.copytree(good, torn)
        with (torn / STATUS).open("a", encoding="utf-8") as fh:
            fh.write('{"event": "stage_fini')
        assert ingest(lineage_app, no_plan, check_sinks(lineage_app)) == 0

        result = click.testing.CliRunner().invoke(
            cli, ["lineage", "reindex", "--sink", self.sink_name, "--json"], obj=lineage_app)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert [s["run_dir"] for s in report["skipped"]] == [str(no_plan)]
        assert "plan.json" in report["skipped"][0]["error"]
        held = self.held(self.open(lineage_app))
        assert set(held) == {good.name, torn.name}
        assert held[torn.name] == held[good.name]

    def test_concurrent_writers_all_land(self, lineage_app: App, run_diamond: Callable[..., Path],
                                         tmp_path: Path) -> None:
        source = run_diamond()
        dirs = []
        for i in range(self.writers):
            copy = source.parent / f"{source.name}-w{i}"
            shutil.copytree(source, copy)
            dirs.append(copy)
        go = tmp_path / "go"
        env = {**os.environ, "BLUT_HOME": str(lineage_app.settings.home),
               "BLUT_NO_STALE_CHECK": "1"}
        ready = [tmp_path / f"ready-{i}" for i in range(len(dirs))]
        procs = [subprocess.Popen([sys.executable, "-c", _WORKER, self.sink_name, str(d), str(go),
                                   str(r)], env=env, stderr=subprocess.PIPE, text=True)
                 for d, r in zip(dirs, ready, strict=True)]
        _wait(lambda: all(r.exists() for r in ready) or any(p.poll() is not None for p in procs))
        go.touch()
        errors = []
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                errors.append(err.strip().splitlines()[-1:] or [f"exit {proc.returncode}"])
        assert not errors, errors
        assert self.held(self.open(lineage_app)) == self.expected(lineage_app, source, *dirs)
