"""Executor benchmarks, whole-process, each against a bare baseline run in the same command.

- 200 independent no-op command stages at 2-way parallelism vs ``xargs -P2`` running the
  same 200 commands (target ≤ 1.5×);
- 200 no-op Python stages at 2-way parallelism: overhead per stage (target ≤ 5 ms), the slope
  between that run and a one-stage run of the same recipe; next to ``xargs -P2`` running
  ``python -c pass`` 200 times;
- a 50-stage chain;
- a memory-bound DAG of stages with different footprints and durations: makespan vs the
  lower bound max(critical path, Σ memory × time / usable memory) (target ≤ 1.15×). The
  stages sleep and declare their footprints and ``expected_seconds``; the run ignores
  calibration (``--no-calibration``), so that bookings stay the declared footprints (the
  stages' real peaks are tiny) and memory is what binds. The row also shows the spread of
  the runs and, from their events, what the process plumbing costs (how long the first
  stage took to start, how much longer than its sleep a stage held its booking) and whether
  other runs on the machine had memory booked meanwhile (which takes it from this one).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._util import ROOT, blut_exe, report

N = 200


def _site(tmp: Path) -> Path:
    from blut_core.testing import installed_distribution

    return installed_distribution(tmp / "site", "blut-benchbook", "0.0",
                                  {"blut.cookbooks": {"benchbook": "benchmarks.cookbook"}})


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "BLUT_HOME": str(tmp / "home"), "BLUT_NO_STALE_CHECK": "1",
            "PYTHONPATH": os.pathsep.join([str(_site(tmp)), str(ROOT)]),
            "BLUT_LINEAGE_SINKS": os.environ.get("BLUT_LINEAGE_SINKS", "duckdb")}


def _timed(argv: list[str], env: dict[str, str] | None = None, shell_input: str | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, input=shell_input, text=True, capture_output=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{argv} failed: {r.stderr[-2000:]}")
    return wall


def _blut(tmp: Path, *args: str) -> float:
    return _timed([*blut_exe(), *args, "--no-progress"], _env(tmp))


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _run(tmp: Path, recipe: str, n: int, tag: str, *extra: str) -> tuple[float, float]:
    """Whole-process wall of one ``blut run`` and the run's own wall (from its summary)."""
    argv = [*blut_exe(), "run", f"benchbook:{recipe}", "-p", f"n={n}", "-p", f"tag={tag}",
            *extra, "--no-progress", "--json"]
    t = time.perf_counter()
    r = subprocess.run(argv, env=_env(tmp), text=True, capture_output=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{argv} failed: {r.stderr[-2000:]}")
    return wall, float(json.loads(r.stdout)["wall"])


def throughput(repeat: int) -> list[tuple[str, str, str]]:
    """Per-stage cost is the slope between a run of N stages and a run of one stage of the
    same recipe, both measured here: what each further stage adds, start-up excluded (that
    is measured on its own: ``blut --version`` and the one-stage run)."""
    rows = []
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        xargs_true = [_timed(["xargs", "-P2", "-n1", "true"], shell_input="x\n" * N)
                      for _ in range(repeat)]
        xargs_py = [_timed(["xargs", "-P2", "-n1", "-I{}", sys.executable, "-c", "pass"],
                           shell_input="x\n" * N) for _ in range(repeat)]
        version = [_timed([*blut_exe(), "--version"], _env(tmp)) for _ in range(repeat)]
        for i in range(repeat):  # interleaved, so that the machine's mood hits every kind alike
            for recipe, n, extra in (("commands", N, ("-j", "2")), ("commands", 1, ("-j", "2")),
                                     ("pythons", N, ("-j", "2")), ("pythons", 1, ("-j", "2")),
                                     ("chain", 50, ()), ("chain", 1, ())):
                runs.setdefault((recipe, n), []).append(_run(tmp, recipe, n, f"{i}", *extra))

    def med(recipe: str, n: int, which: int) -> float:
        return _median([r[which] for r in runs[(recipe, n)]])

    def slope(recipe: str, n: int) -> float:
        return (med(recipe, n, 0) - med(recipe, 1, 0)) / (n - 1) * 1000

    xt, xp, v = _median(xargs_true), _median(xargs_py), _median(version)
    c, cw = med("commands", N, 0), med("commands", N, 1)
    p, pw = med("pythons", N, 0), med("pythons", N, 1)
    rows.append((f"xargs -P2: {N} x true (baseline)", f"{xt:.3f} s", ""))
    rows.append((f"blut run: {N} command stages, -j 2", f"{c:.3f} s",
                 f"whole process {c / xt:.2f}x xargs (target <= 1.5x); the run itself "
                 f"{cw:.3f} s = {cw / xt:.2f}x xargs; {slope('commands', N):.2f} ms/stage"))
    rows.append((f"xargs -P2: {N} x python -c pass", f"{xp:.3f} s", ""))
    rows.append((f"blut run: {N} Python stages, -j 2", f"{p:.3f} s",
                 f"{slope('pythons', N):.2f} ms/stage (target <= 5 ms); the run itself "
                 f"{pw:.3f} s = {pw / N * 1000:.2f} ms/stage; {p / xp:.2f}x xargs python"))
    rows.append(("blut run: 50-stage chain", f"{med('chain', 50, 0):.3f} s",
                 f"{slope('chain', 50):.2f} ms/stage; the run itself "
                 f"{med('chain', 50, 1):.3f} s"))
    rows.append(("blut run: one stage (command / Python)",
                 f"{med('commands', 1, 0):.3f} / {med('pythons', 1, 0):.3f} s",
                 "start-up, planning, provenance, lineage"))
    rows.append(("blut --version (start-up, same command)", f"{v:.3f} s", ""))
    return rows


def _usable(tmp: Path) -> int:
    out = subprocess.run([*blut_exe(), "broker", "probe", "--json"], env=_env(tmp),
                         capture_output=True, text=True, check=True).stdout
    probe = json.loads(out)
    return int((probe["available_bytes"] - probe["floor_bytes"]) * 0.95)


def memory_bound(repeat: int) -> list[tuple[str, str, str]]:
    from benchmarks.cookbook import MEMDAG, WIDE

    return [_packing("wide", WIDE, repeat, "memory-bound DAG: 26 stages"),
            _packing("memdag", MEMDAG, repeat, "mixed DAG (critical path binds): 15 stages")]


def _packing(recipe: str, spec: list[tuple[str, float, float, list[str]]], repeat: int,
             label: str) -> tuple[str, str, str]:
    scale = 1.0
    dur = {n: u * scale for n, _, u, _ in spec}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        usable = _usable(tmp)
        walls, first, per_stage, others = [], [], [], []
        for i in range(repeat):
            r = subprocess.run([*blut_exe(), "run", f"benchbook:{recipe}", "-p", f"usable={usable}",
                                "-p", f"scale={scale}", "-p", f"tag={i}", "-j", "64",
                                "--no-calibration", "--no-progress", "--json"],
                               env=_env(tmp), capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(r.stderr[-2000:])
            summary = json.loads(r.stdout)
            walls.append(float(summary["wall"]))
            start, extra, other = _run_costs(Path(summary["run_dir"]), dur)
            first.append(start)
            per_stage.append(extra)
            others.append(other / usable)
    # lower bound: the longest chain of durations, or memory-time over usable memory
    ins = {n: i for n, _, _, i in spec}
    finish: dict[str, float] = {}
    for n, _, _, _ in spec:
        finish[n] = dur[n] + max((finish[i] for i in ins[n]), default=0.0)
    critical = max(finish.values())
    area = sum(share * u * scale for _, share, u, _ in spec)  # in usable x seconds
    bound = max(critical, area)
    m = _median(walls)
    return (label, f"{m:.2f} s",
            f"lower bound {bound:.2f} s (critical path {critical:.2f} s, memory x time "
            f"{area:.2f} s) -> {m / bound:.3f}x (target <= 1.15x); runs {min(walls) / bound:.3f}-"
            f"{max(walls) / bound:.3f}x; first stage started {_median(first):.2f} s after its "
            f"admission, each stage held its memory {_median(per_stage) * 1000:.0f} ms longer "
            f"than it slept"
            + (f"; other runs booked up to {max(others):.0%} of the memory during "
               f"{sum(o > 0.005 for o in others)} of the runs" if max(others) > 0.005 else ""))


def _run_costs(run_dir: Path, seconds: dict[str, float]) -> tuple[float, float, int]:
    """From a run's events: how long its first stage took to start after admission, the
    median time a stage's booking outlived its sleep (admitted to finished, minus seconds),
    and the most memory other runs had booked in the machine-wide ledger at an admission."""
    admitted: dict[str, float] = {}
    started: dict[str, float] = {}
    held = []
    own: dict[str, int] = {}  # this run's stages holding a booking, and their footprints
    other = 0
    for line in (run_dir / "status.jsonl").read_text().splitlines():
        ev = json.loads(line)
        stage = ev.get("stage")
        if ev["event"] == "stage_admitted":
            admitted[stage] = ev["t"]
            other = max(other, int(ev.get("booked_bytes") or 0) - sum(own.values()))
            own[stage] = int(ev.get("footprint_bytes") or 0)
        elif ev["event"] == "stage_started":
            started[stage] = ev["t"]
        elif ev["event"] == "stage_finished" and stage in admitted:
            held.append(ev["t"] - admitted[stage] - seconds[stage])
            own.pop(stage, None)
    first = min(admitted, key=admitted.__getitem__)
    return started[first] - admitted[first], _median(held), other


def main(repeat: int = 5) -> None:
    report(f"executor, whole process (median of {repeat})", throughput(repeat))
    report("memory-aware packing (median of 3, -j 64)", memory_bound(3))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
