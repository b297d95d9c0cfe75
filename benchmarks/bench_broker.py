"""Broker benchmarks: probe, an admission decision, and a stage's cage, each against a baseline.

Run standalone: ``python benchmarks/bench_broker.py [--json]``. Every figure is a median over
many repetitions measured in this process, next to a baseline measured in the same run:

- probe vs an empty function call and vs ``psutil.virtual_memory()``;
- one admission decision (pure ``admit``, and the full per-stage decision with a footprint
  model and calibration lookup) vs an empty call;
- cage set-up plus tear-down, and spawning ``/bin/true`` caged vs bare.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
        results = {"probe": bench_probe(), "admission": bench_admission(), "cage": bench_cage()}
    p, a, c = results["probe"], results["admission"], results["cage"]
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
