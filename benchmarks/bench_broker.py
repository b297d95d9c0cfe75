"""Broker benchmarks: probe, an admission decision, and a stage's cage, each against a baseline.

Run standalone: ``python benchmarks/bench_broker.py [--json]``. Every figure is a median over
many repetitions measured in this process, next to a baseline measured in the same run:

- probe vs an empty function call and vs ``psutil.virtual_memory()``;
- one admission decision (pure ``admit``, and the full per-stage decision with a footprint
  model and calibration lookup) vs an empty call;
- the policy as a run drives it (W1's shape: 200 undeclared command stages, 2 at a time,
  the real probe and a real ledger file): CPU per stage for its admission, booking, start
  and release, and how many ledger transactions (lock, read, write) the run took;
- cage set-up plus tear-down, and spawning ``/bin/true`` caged vs bare.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _median(fn: Callable[[], object], n: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _noop() -> None:
    return None


def bench_probe(n: int = 2000) -> dict[str, float]:
    import psutil

    from blut_core.broker.machine import probe

    return {"probe": _median(probe, n), "empty_call": _median(_noop, n),
            "psutil_virtual_memory": _median(psutil.virtual_memory, n)}


def bench_admission(n: int = 5000) -> dict[str, float]:
    from blut_core import App, Footprint, Knob, Stage
    from blut_core.broker.admission import Budget, admit
    from blut_core.broker.calibration import CalibrationStore
    from blut_core.broker.config import BrokerConfig
    from blut_core.broker.machine import probe
    from blut_core.broker.resolve import Estimator
    from blut_core.model.sizes import GiB
    from blut_core.run.policy import decide_stage

    cfg = BrokerConfig()
    budget = Budget(box=24 * GiB, available=20 * GiB, booked=2 * GiB, floor=2 * GiB)
    need = lambda d: 3 * GiB  # noqa: E731
    knob_need = lambda d: GiB + d["workers"] * GiB  # noqa: E731
    app = App.from_environment()
    est = Estimator(app.registry, "bench:recipe", CalibrationStore(None), cfg)
    stage = Stage.command("s", ["true"], footprint=Footprint.scaling(
        "1G", {"workers": "512M", "batch": "16M"}, drivers={"workers": 4, "batch": 32}))
    snap = probe()
    return {
        "admit": _median(lambda: admit("s", need, {}, {}, budget, cfg.headroom_for), n),
        "right_size": _median(lambda: admit("s", knob_need, {"workers": 64},
                                            {"workers": Knob(minimum=1)}, budget,
                                            cfg.headroom_for), n),
        "stage_decision": _median(lambda: decide_stage(est, stage, snap, 0, cfg), n),
        "empty_call": _median(_noop, n),
    }


@dataclasses.dataclass
class _Attempt:
    stage: Any
    cap: int | None
    handle: Any = dataclasses.field(default_factory=lambda: types.SimpleNamespace(cgroup=None))


def bench_policy(n: int = 200, jobs: int = 2, rounds: int = 7) -> dict[str, float]:
    """CPU seconds per stage of a run's memory policy (see the module docstring)."""
    from blut_core import (
        App,
        BrokerConfig,
        CalibrationStore,
        Classification,
        Ledger,
        MemoryPolicy,
        Stage,
        StageOutcome,
        StageState,
    )
    from blut_core.broker.resolve import Estimator

    app = App.from_environment()
    cfg = BrokerConfig()
    per_stage, transactions = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            ledger = Ledger(Path(tmp) / f"ledger-{r}.json")
            counted = [0]
            opened = ledger.transaction

            def counting(opened: Any = opened, counted: list[int] = counted) -> Any:
                counted[0] += 1
                return opened()

            ledger.transaction = counting  # type: ignore[method-assign]
            policy = MemoryPolicy(estimator=Estimator(app.registry, "bench:w1",
                                                      CalibrationStore(None), cfg),
                                  ledger=ledger, config=cfg, max_parallel=jobs)
            stages = [Stage.command(f"c{i}", ["true"], cache=False, params={"tag": str(r)})
                      for i in range(n)]
            start = time.process_time()
            for s in stages:  # the executor orders the ready set by size
                policy.size_hint(s)
            todo, running = list(stages), dict[str, _Attempt]()
            while todo or running:
                for d in policy.choose(todo, list(running.values())):  # type: ignore[arg-type]
                    todo.remove(d.stage)
                    attempt = running[d.stage.name] = _Attempt(d.stage, getattr(d, "cap", None))
                    policy.started(attempt)  # type: ignore[arg-type]
                name = next(iter(running))
                policy.finished(running.pop(name), StageOutcome(  # type: ignore[arg-type]
                    stage=name, attempt=1, state=StageState.OK, classification=Classification.OK))
            policy.close()
            per_stage.append((time.process_time() - start) / n)
            transactions.append(counted[0])
    return {"per_stage": statistics.median(per_stage),
            "transactions": float(statistics.median(transactions)), "stages": float(n)}


def bench_cage(n: int = 200) -> dict[str, Any]:
    from blut_core import App
    from blut_core.broker.select import select_containment

    sel = select_containment(App.from_environment().registry, os.environ)
    containment = sel.containment

    def setup_teardown() -> None:
        cage = containment.cage("bench", 64 << 20)
        cage.release()

    def bare() -> None:
        subprocess.Popen(["/bin/true"], start_new_session=True, close_fds=True).wait()

    def caged() -> None:
        cage = containment.cage("bench", 64 << 20)
        argv, preexec = cage.wrap(["/bin/true"])
        p = subprocess.Popen(argv, start_new_session=True, close_fds=True, preexec_fn=preexec)
        cage.attach(p.pid)
        p.wait()
        cage.kill()
        cage.peak_bytes()
        cage.oom_killed()
        cage.release()

    return {"containment": sel.name, "setup_teardown": _median(setup_teardown, n, 5),
            "spawn_bare": _median(bare, n, 5), "spawn_caged": _median(caged, n, 5)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every benchmark; print a table (or JSON with ``--json``); return the figures."""
    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("BLUT_HOME", home)
        os.environ.setdefault("BLUT_LEDGER", os.path.join(home, "ledger.json"))
        results = {"probe": bench_probe(), "admission": bench_admission(),
                   "policy": bench_policy(), "cage": bench_cage()}
    p, a, c, w = results["probe"], results["admission"], results["cage"], results["policy"]
    ratios = {
        "probe_vs_empty_call": p["probe"] / p["empty_call"],
        "probe_vs_psutil": p["probe"] / p["psutil_virtual_memory"],
        "admit_vs_empty_call": a["admit"] / a["empty_call"],
        "caged_vs_bare_spawn": c["spawn_caged"] / c["spawn_bare"],
        "setup_teardown_vs_bare_spawn": c["setup_teardown"] / c["spawn_bare"],
    }
    results["ratios"] = ratios
    if "--json" in args:
        print(json.dumps(results, indent=2))
        return results
    us, ms = 1e6, 1e3
    lines = [
        ("probe", p["probe"] * us, "µs", "target ≤ 1000 µs"),
        ("  empty call", p["empty_call"] * us, "µs", f"probe is {ratios['probe_vs_empty_call']:.0f}×"),
        ("  psutil.virtual_memory()", p["psutil_virtual_memory"] * us, "µs",
         f"probe is {ratios['probe_vs_psutil']:.2f}×"),
        ("admission decision (admit)", a["admit"] * us, "µs", "target ≤ 50 µs"),
        ("  right-size (64 → fit)", a["right_size"] * us, "µs", ""),
        ("  full stage decision", a["stage_decision"] * us, "µs", "model + calibration lookup"),
        ("  empty call", a["empty_call"] * us, "µs", f"admit is {ratios['admit_vs_empty_call']:.0f}×"),
        ("policy, per stage (W1)", w["per_stage"] * us, "µs",
         f"CPU; {w['transactions']:.0f} ledger transactions for {w['stages']:.0f} stages"),
        ("cage set-up + tear-down", c["setup_teardown"] * ms, "ms", f"{c['containment']}; target ≤ 5 ms"),
        ("  spawn /bin/true bare", c["spawn_bare"] * ms, "ms",
         f"set-up + tear-down is {ratios['setup_teardown_vs_bare_spawn']:.2f}×"),
        ("  spawn /bin/true caged", c["spawn_caged"] * ms, "ms",
         f"{ratios['caged_vs_bare_spawn']:.2f}× bare"),
    ]
    for label, value, unit, note in lines:
        print(f"{label:<28}{value:10.3f} {unit}   {note}")
    return results


if __name__ == "__main__":
    main()
