"""Cookbook benchmarks: the default ``signal:sweep``, its makespan against a lower bound, and
how far each stage's declared footprint is above the peak blut measured.

Run standalone: ``python benchmarks/bench_cookbooks.py [--runs N] [--json]`` (``--load FILE``
prints the tables of runs saved with ``--json``). Each run is
``blut run signal:sweep`` with its default params, in a fresh ``BLUT_HOME`` (nothing cached,
nothing calibrated: what a first run on a fresh machine does), booking in the machine's
ledger like any run. From each run's own records (its ``status.jsonl``):

- **makespan**: the run's wall time as ``blut run`` reports it, and its stage span (the
  first stage admitted to the last one finished);
- the **lower bound** ``max(critical path, Σ memory × time / usable memory)``: each stage's
  duration from its finish events (all its attempts), its memory the peak the kernel
  measured (``mem×t/usable``; with what admission booked for it, ``booked×t/usable``), and
  usable memory ``box − floor`` as the broker probed and configured them. Beside it,
  ``work/cpus`` (Σ time over the CPUs blut runs stages on), which no order beats either, and
  ``booked conflict``: the same path bound once two stages whose bookings together exceed
  usable memory may not overlap (the pool and the large codebook), what blut's schedule
  can at best reach given the declarations;
- what admission did: the stages it right-sized, and those that waited for memory;
- per stage, its **declared** footprint (the model's estimate at the drivers it ran with,
  :func:`blut_core.testing.declared_peaks`) over its **measured peak**: min and median;
- OOM kills the kernel logged during the run (``dmesg``): global ones (the box ran out:
  must be 0) and those within the run's own stages' caps (``OOM global/run``).

The figures are the median of the runs (3 by default).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._util import blut_exe

GiB = 1 << 30
RECIPE = "signal:sweep"


def _dmesg() -> list[str]:
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []


def _stamp(line: str) -> float:
    """The kernel's timestamp of a ``dmesg`` line (``[ 6611.856498] …``), 0 if none."""
    head = line[1:line.find("]")] if line.startswith("[") else ""
    try:
        return float(head)
    except ValueError:
        return 0.0


def _oom_kills(since: float, run_id: str) -> dict[str, int] | None:
    """OOM kills the kernel logged after ``since``: ``global`` (not within a memory cgroup's
    limit: the box ran out), ``stages`` (within this run's stages' cages), ``others``
    (within the limits of other cgroups: other runs' stages); ``None`` without ``dmesg``."""
    lines = _dmesg()
    if not lines:
        return None
    kills = [line for line in lines if "oom-kill:" in line and _stamp(line) > since]
    mine = [line for line in kills if "CONSTRAINT_MEMCG" in line and run_id in line]
    outside = [line for line in kills if "CONSTRAINT_MEMCG" not in line]
    return {"global": len(outside), "stages": len(mine), "others": len(kills) - len(mine) - len(outside)}


def _critical_path(inputs: Mapping[str, tuple[str, ...]], seconds: Mapping[str, float]) -> float:
    done: dict[str, float] = {}

    def finish(name: str) -> float:
        if name not in done:
            done[name] = seconds.get(name, 0.0) + max((finish(i) for i in inputs[name]), default=0.0)
        return done[name]

    return max((finish(n) for n in inputs), default=0.0)


def _conflict_bound(inputs: Mapping[str, tuple[str, ...]], seconds: Mapping[str, float],
                    memory: Mapping[str, int], usable: int) -> float:
    """A bound that also knows two stages whose memory together exceeds ``usable`` cannot
    overlap: for each such pair, the shorter of their two orders, each stage after its
    longest chain of inputs and followed by its longest chain of dependents."""
    children: dict[str, list[str]] = {n: [] for n in inputs}
    for name, ins in inputs.items():
        for parent in ins:
            children[parent].append(name)
    head: dict[str, float] = {}
    tail: dict[str, float] = {}

    def before(n: str) -> float:
        if n not in head:
            head[n] = max((before(i) + seconds.get(i, 0.0) for i in inputs[n]), default=0.0)
        return head[n]

    def after(n: str) -> float:
        if n not in tail:
            tail[n] = max((seconds.get(c, 0.0) + after(c) for c in children[n]), default=0.0)
        return tail[n]

    best = 0.0
    names = [n for n in inputs if memory.get(n)]
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            if memory[a] + memory[b] <= usable or a in inputs[b] or b in inputs[a]:
                continue
            da, db = seconds.get(a, 0.0), seconds.get(b, 0.0)
            a_first = max(before(a) + da, before(b)) + db + after(b)
            b_first = max(before(b) + db, before(a)) + da + after(a)
            best = max(best, min(a_first, b_first))
    return best


def analyse(run_dir: Path, wall: float, home: Path) -> dict[str, Any]:
    """The figures of one finished run, from its directory."""
    from blut_core.run.resume import load_plan
    from blut_core.store import STATUS, read_events
    from blut_core.testing import declared_peaks, make_app

    _, plan = load_plan(run_dir)
    inputs = {s.name: tuple(s.inputs) for s in plan}
    events = list(read_events(run_dir / STATUS))
    seconds: dict[str, float] = {}
    peak_area = booked_area = 0.0
    booked: dict[tuple[str, int], int] = {}
    held: dict[str, int] = {}
    first: float | None = None
    last: float | None = None
    box = floor = 0
    right_sized: dict[str, str] = {}
    waited: dict[str, float] = {}
    for ev in events:
        kind, name, t = ev.get("event"), str(ev.get("stage")), float(ev.get("t") or 0.0)
        attempt = int(ev.get("attempt") or 0)
        if kind == "stage_admitted":
            first = t if first is None else min(first, t)
            booked[(name, attempt)] = int(ev.get("footprint_bytes") or 0)
            box, floor = int(ev.get("box_bytes") or box), int(ev.get("floor_bytes") or floor)
            if ev.get("decision") == "right_size":
                right_sized[name] = str(ev.get("reason"))
            if (ev.get("waited") or 0) >= 1.0:
                waited[name] = waited.get(name, 0.0) + float(ev["waited"])
        elif kind == "stage_finished" and (name, attempt) in booked:
            duration = float(ev.get("duration") or 0.0)
            seconds[name] = seconds.get(name, 0.0) + duration
            peak_area += duration * int(ev.get("peak_bytes") or 0)
            booked_area += duration * booked[(name, attempt)]
            held[name] = max(held.get(name, 0), booked[(name, attempt)])
            last = t if last is None else max(last, t)
    cpus = max(1, len(os.sched_getaffinity(0)))  # what blut runs stages on (its default --jobs)
    usable = max(1, box - floor)
    path = _critical_path(inputs, seconds)
    mem_bound, booked_bound = peak_area / usable, booked_area / usable
    bound = max(path, mem_bound)
    conflict = _conflict_bound(inputs, seconds, held, usable)
    checks = declared_peaks(make_app(home, cookbooks=["signal"]), run_dir)
    ratios = {c.stage: c.ratio for c in checks if c.ratio is not None and c.state == "ok"}
    return {
        "wall": wall, "span": (last or 0.0) - (first or 0.0), "critical_path": path,
        "mem_time_over_usable": mem_bound, "booked_time_over_usable": booked_bound,
        "work_over_cpus": sum(seconds.values()) / cpus, "cpus": cpus, "bound": bound,
        "wall_over_bound": wall / bound if bound else None, "box": box, "floor": floor,
        "booked_conflict_bound": conflict,
        "right_sized": right_sized, "waited": waited,
        "stages": {c.stage: {"declared": c.declared_bytes, "peak": c.peak_bytes, "ratio": c.ratio,
                             "seconds": seconds.get(c.stage)} for c in checks if c.state == "ok"},
        "ratio_min": min(ratios.values(), default=None),
        "ratio_median": statistics.median(ratios.values()) if ratios else None,
    }


def run_once() -> dict[str, Any]:
    """One ``blut run signal:sweep`` in a fresh home; its figures."""
    home = Path(tempfile.mkdtemp(prefix="bench-cookbooks-"))
    env = {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1"}
    since = max((_stamp(line) for line in _dmesg()), default=0.0)
    t = time.perf_counter()
    done = subprocess.run([*blut_exe(), "run", RECIPE, "--json", "--no-progress"], capture_output=True,
                          text=True, env=env, check=False)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"blut run {RECIPE} exited {done.returncode}:\n{done.stdout}\n"
                           f"{done.stderr[-4000:]}")
    result = json.loads(done.stdout)
    try:
        out = analyse(Path(result["run_dir"]), float(result["wall"]), home)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the signal, the cache, the models: ~100 MB
    out["process_wall"] = elapsed
    out["run_id"] = result["run_id"]
    out["oom_kills"] = _oom_kills(since, result["run_id"])
    return out


def _med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs if r[key] is not None)


def _gib(n: float | None) -> str:
    return "?" if n is None else f"{n / GiB:.2f} GiB" if n >= GiB / 4 else f"{n / (1 << 20):.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    """``[--runs N] [--json]``; ``--load FILE`` prints the table of runs saved by ``--json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--load" in args:
        runs = json.loads(Path(args[args.index("--load") + 1]).read_text())
    else:
        count = int(args[args.index("--runs") + 1]) if "--runs" in args else 3
        runs = [run_once() for _ in range(count)]
    if "--json" in args:
        print(json.dumps(runs, indent=1))
    else:
        print_table(runs)
    return 0


def print_table(runs: list[dict[str, Any]]) -> None:
    """The runs' figures, and their medians, as tables."""
    count, first = len(runs), runs[0]
    print(f"\n== {RECIPE}, default params, {count} runs (fresh BLUT_HOME each); box {_gib(first['box'])}, "
          f"floor {_gib(first['floor'])}, usable {_gib(first['box'] - first['floor'])}, {first['cpus']} CPUs")
    head = ("run", "wall", "span", "crit path", "mem×t/usable", "booked×t/usable", "work/cpus",
            "bound", "wall/bound", "booked conflict", "OOM global/run")
    print("  " + "  ".join(f"{h:>15}" if i else f"{h:<6}" for i, h in enumerate(head)))
    for i, r in enumerate(runs, 1):
        cells = [f"{r[k]:.1f}s" for k in ("wall", "span", "critical_path", "mem_time_over_usable",
                                          "booked_time_over_usable", "work_over_cpus", "bound")]
        kills = r.get("oom_kills")
        cells += [f"{r['wall_over_bound']:.2f}", f"{r['booked_conflict_bound']:.1f}s",
                  "?" if not kills else f"{kills['global']}/{kills['stages']}"]
        print("  " + f"{i:<6}" + "  ".join(f"{c:>15}" for c in cells))
    med = [f"{_med(runs, k):.1f}s" for k in ("wall", "span", "critical_path", "mem_time_over_usable",
                                               "booked_time_over_usable", "work_over_cpus", "bound")]
    med += [f"{_med(runs, 'wall_over_bound'):.2f}", f"{_med(runs, 'booked_conflict_bound'):.1f}s", ""]
    print("  " + f"{'median':<6}" + "  ".join(f"{c:>15}" for c in med))
    sized = sorted({f"{k}: {v}" for r in runs for k, v in r["right_sized"].items()})
    print("\n  right-sized: " + ("; ".join(sized) or "none"))
    for r in runs:
        print("  waited:      " + (", ".join(f"{k} {v:.1f}s" for k, v in r["waited"].items()) or "none"))
    print("\n== declared footprint ÷ measured peak, per stage (median over the runs)")
    names = list(first["stages"])
    for name in names:
        per = [r["stages"][name] for r in runs if name in r["stages"] and r["stages"][name]["ratio"]]
        if not per:
            continue
        ratio = statistics.median(p["ratio"] for p in per)
        peak = statistics.median(p["peak"] for p in per)
        secs = statistics.median(p["seconds"] or 0.0 for p in per)
        print(f"  {name:<24} declared {_gib(per[0]['declared']):>10}  peak {_gib(peak):>10}  "
              f"ratio {ratio:5.2f}  {secs:6.1f}s")
    per_run = ", ".join(f"{r['ratio_median']:.2f}" for r in runs)
    print(f"  min {min(r['ratio_min'] for r in runs):.2f}, median {_med(runs, 'ratio_median'):.2f} "
          f"(per run: {per_run})")


if __name__ == "__main__":
    sys.exit(main())
