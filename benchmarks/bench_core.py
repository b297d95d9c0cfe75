"""Core benchmarks: CLI start-up, and the executor's per-stage overhead.

- ``blut --help`` / ``blut --version``: median of whole-process runs, as a ratio to
  ``python -c "import click"`` measured in the same command (target ≤ 2.5×).
- 100 no-op command stages and 100 no-op Python stages run one at a time by the executor,
  minus 100 bare subprocesses of the same kind (``true``; ``python -c pass``), per stage
  (target ≤ 10 ms).
- Content hashing of 100 MiB, in memory and from a file in the page cache: BLAKE3 (what blut
  uses) against sha256 in the same command, GB/s and ms (median of 5; target ≥ 2 GB/s,
  ≤ 50 ms).
- A cache key for a typical stage identity, in µs (target ≤ 5), and the cache's store,
  lookup and materialisation of an empty output and of a 100-file one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


MiB = 1 << 20


def _gbps(seconds: float, size: int) -> str:
    return f"{size / seconds / 1e9:.2f} GB/s"


def hashing(repeat: int = 5) -> None:
    import hashlib

    from blake3 import blake3

    from blut_core.model.hashing import file_hash

    size = 100 * MiB
    data = os.urandom(size)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("sha256, in memory (baseline)", lambda: hashlib.sha256(data).hexdigest()),
        ("blake3, in memory, 1 thread", lambda: blake3(data).hexdigest()),
        ("blake3, in memory, all cores", lambda: blake3(data, max_threads=blake3.AUTO).hexdigest()),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "100MiB.bin"
        path.write_bytes(data)
        file_hash(path)  # in the page cache

        def sha_file() -> object:
            with path.open("rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()

        cases += [
            ("sha256, file in page cache (baseline)", sha_file),
            ("blut file_hash (blake3, 1 MiB reads)", lambda: file_hash(path)),
            ("blake3 update_mmap, 1 thread", lambda: blake3().update_mmap(path).hexdigest()),
        ]
        rows = []
        for name, fn in cases:
            walls, cpus = _wall_and_cpu(fn, repeat)
            med, cpu = statistics.median(walls), statistics.median(cpus)
            target = " (target >= 2 GB/s, <= 50 ms)" if name.startswith("blut") else ""
            rows.append((name, f"{med * 1000:.1f} ms",
                         f"{_gbps(med, size)}; CPU {cpu * 1000:.1f} ms{target}"))
    report(f"content hashing, 100 MiB (median of {repeat}; wall, and CPU of all threads)", rows)


def _wall_and_cpu(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return walls, cpus


def _identity() -> tuple[dict[str, Any], dict[str, str]]:
    from blut_core import Stage

    stage = Stage.call("train", "benchmarks.stages:noop", inputs=["prep", "vocab", "split"],
                       params={"lr": 0.001, "epochs": 3, "seed": 7, "model": "small"})
    return stage.identity(), {name: f"{i:064x}" for i, name in enumerate(stage.inputs)}


def cache_timings(repeat: int = 20) -> None:
    import timeit

    from blut_core.store.cache import Cache, cache_key, identity_text, keyed

    identity, inputs = _identity()
    n = 20000
    per = min(timeit.repeat(lambda: cache_key(identity, inputs), number=n, repeat=7)) / n
    cpu = min(timeit.repeat(lambda: cache_key(identity, inputs), number=n, repeat=7,
                            timer=time.process_time)) / n
    text = identity_text(identity)  # what a run does: the identity is encoded once a stage
    run_per = min(timeit.repeat(lambda: keyed(text, inputs), number=n, repeat=7)) / n
    run_cpu = min(timeit.repeat(lambda: keyed(text, inputs), number=n, repeat=7,
                                timer=time.process_time)) / n
    rows = [("cache key in a run (identity encoded once a stage; best of 7)",
             f"{run_per * 1e6:.2f} us", f"CPU {run_cpu * 1e6:.2f} us (target <= 5 us)"),
            ("cache key from scratch, typical stage identity (best of 7)", f"{per * 1e6:.2f} us",
             f"CPU {cpu * 1e6:.2f} us")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = Cache(root / "cache")
        for files in (0, 100):
            stores, hits, copies, cpu_stores, cpu_hits = [], [], [], [], []
            for i in range(repeat):
                out = root / f"out-{files}-{i}"
                out.mkdir()
                for f in range(files):
                    (out / f"part-{f:03d}.bin").write_bytes(os.urandom(4096))
                key = f"{files:02d}{i:062x}"
                t, c = time.perf_counter(), time.process_time()
                entry = cache.store(key, "s", out)
                t1, c1 = time.perf_counter(), time.process_time()
                found = cache.lookup(key)
                assert found == entry
                cache.materialize(found, root / f"run-{files}-{i}" / "out")
                t2, c2 = time.perf_counter(), time.process_time()
                cpu_stores.append(c1 - c)
                cpu_hits.append(c2 - c1)
                shutil.copytree(out, root / f"copy-{files}-{i}")
                copies.append(time.perf_counter() - t2)
                stores.append(t1 - t)
                hits.append(t2 - t1)
            what = "an empty output" if not files else f"{files} files of 4 KiB"
            rows += [(f"store {what}", f"{statistics.median(stores) * 1000:.2f} ms",
                      f"CPU {statistics.median(cpu_stores) * 1000:.2f} ms (shutil.copytree of "
                      f"it: {statistics.median(copies) * 1000:.2f} ms)"),
                     (f"lookup + materialise {what}", f"{statistics.median(hits) * 1000:.2f} ms",
                      f"CPU {statistics.median(cpu_hits) * 1000:.2f} ms")]
    report(f"cache (median of {repeat})", rows)


def main(repeat: int = 10) -> None:
    startup(max(repeat, 10))
    overhead(max(3, repeat // 3))
    hashing()
    cache_timings()


if __name__ == "__main__":
    main()
