"""Core benchmarks: CLI start-up, and the executor's per-stage overhead.

- ``blut --help`` / ``blut --version``: median of whole-process runs, as a ratio to
  ``python -c "import click"`` measured in the same command (target ≤ 2.5×).
- 100 no-op command stages and 100 no-op Python stages run one at a time by the executor,
  minus 100 bare subprocesses of the same kind (``true``; ``python -c pass``), per stage
  (target ≤ 10 ms).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

from benchmarks._util import ROOT, blut_exe, median_ms, report, time_process

N_STAGES = 100


def startup(repeat: int) -> None:
    env = {"BLUT_NO_STALE_CHECK": "0"}
    click = time_process([sys.executable, "-c", "import click"], repeat)
    bare = time_process([sys.executable, "-c", "pass"], repeat)
    helps = time_process([*blut_exe(), "--help"], repeat, env)
    version = time_process([*blut_exe(), "--version"], repeat, env)
    base = median_ms(click)
    target = "(target <= 2.5x)"
    report(f"start-up (median of {repeat} whole-process runs)", [
        ("python -c pass", f"{median_ms(bare):.1f} ms", ""),
        ("python -c 'import click' (baseline)", f"{base:.1f} ms", "1.00x"),
        ("blut --help", f"{median_ms(helps):.1f} ms", f"{median_ms(helps) / base:.2f}x {target}"),
        ("blut --version", f"{median_ms(version):.1f} ms", f"{median_ms(version) / base:.2f}x {target}"),
    ])


@attrs.frozen
class _NoParams:
    pass


def _plan(kind: str):  # type: ignore[no-untyped-def]
    from blut_core import Plan, Stage

    if kind == "command":
        return Plan.of(*(Stage.command(f"s{i}", ["true"], cache=False) for i in range(N_STAGES)))
    return Plan.of(*(Stage.call(f"s{i}", "benchmarks.stages:noop", cache=False)
                     for i in range(N_STAGES)))


def _run_plan(kind: str, home: Path) -> float:
    from blut_core import App, CookbookSpec, ExecOptions, Recipe, Settings
    from blut_core.host.cookbooks import CookbookIndex, RecipeRef
    from blut_core.host.manager import make_plugin_manager
    from blut_core.run.orchestrate import Prepared, start_run
    from blut_core.run.scheduling import BoundedPolicy

    app = App(make_plugin_manager(), Settings.from_environ({**os.environ, "BLUT_HOME": str(home)}))
    recipe = Recipe(name=f"noop-{kind}", summary="", params=_NoParams, build=lambda _: _plan(kind))
    book = CookbookSpec(name="bench", summary="")
    app.__dict__["cookbooks"] = CookbookIndex(recipes={}, cookbooks={}, records=())
    prepared = Prepared(ref=RecipeRef(cookbook=book, recipe=recipe), params=_NoParams(),
                        plan=_plan(kind))
    t = time.perf_counter()
    summary = start_run(app, prepared, options=ExecOptions(no_cache=True), policy=BoundedPolicy(1))
    wall = time.perf_counter() - t
    assert summary.outcome == "ok", summary
    return wall


def _bare(argv: list[str]) -> float:
    t = time.perf_counter()
    for _ in range(N_STAGES):
        subprocess.run(argv, check=True)
    return time.perf_counter() - t


def overhead(repeat: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    rows = []
    for kind, argv in (("command", ["true"]), ("python", [sys.executable, "-c", "pass"])):
        walls, bares = [], []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                bares.append(_bare(argv))
                walls.append(_run_plan(kind, Path(tmp)))
        wall, bare = sorted(walls)[len(walls) // 2], sorted(bares)[len(bares) // 2]
        per = (wall - bare) / N_STAGES * 1000
        rows.append((f"{N_STAGES} no-op {kind} stages", f"{wall:.2f} s",
                     f"bare {bare:.2f} s -> overhead {per:.1f} ms/stage (target <= 10 ms)"))
    report(f"executor, one stage at a time (median of {repeat})", rows)


def main(repeat: int = 10) -> None:
    startup(max(repeat, 10))
    overhead(max(3, repeat // 3))


if __name__ == "__main__":
    main()
