"""Baseline for the Ray launcher's benchmark: plain Ray tasks, no blut.

    . STATE_DIR/env.sh      # a cluster from tools/cluster/ray-up.sh
    python packages/blut-launcher-ray/bench_baseline.py [TASKS] [REPEATS]

Each repeat is a fresh driver process, as a blut run would be: it times ``ray.init`` (the
connection to the cluster), then TASKS (default 50) tasks that do nothing, submitted at once
and waited for with ``ray.get`` ("cold": the driver's first tasks, workers still to start),
then the same again ("warm"). Prints each repeat and the medians of REPEATS (default 3).
Ray starts a new driver's workers in the background, partly while ``ray.init`` returns, so
connect and cold times trade off between repeats: their sum is printed too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

DRIVER = """
import json, sys, time
import ray

tasks = int(sys.argv[1])
t0 = time.perf_counter()
ray.init(address=sys.argv[2], log_to_driver=False)
connect = time.perf_counter() - t0

@ray.remote(num_cpus=1, max_retries=0)
def nothing():
    return None

def batch():
    t = time.perf_counter()
    ray.get([nothing.remote() for _ in range(tasks)])
    return time.perf_counter() - t

cold = batch()
warm = batch()
ray.shutdown()
print(json.dumps({"connect": connect, "cold": cold, "warm": warm}))
"""


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        raise SystemExit("bench_baseline.py: RAY_ADDRESS is not set (source the cluster's env.sh)")
    runs = []
    for r in range(1, repeats + 1):
        p = subprocess.run([sys.executable, "-c", DRIVER, str(tasks), address],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"driver failed: {p.stderr[-2000:]}")
        run = json.loads(p.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(f"run {r}: ray.init {run['connect']:.2f}s, {tasks} tasks cold {run['cold']:.3f}s, "
              f"warm {run['warm']:.3f}s", flush=True)
    for run in runs:
        run["first"] = run["connect"] + run["cold"]
    med = {k: statistics.median(run[k] for run in runs) for k in ("connect", "cold", "warm", "first")}
    print(f"median of {repeats}: ray.init {med['connect']:.2f}s; {tasks} no-op tasks "
          f"{med['cold']:.3f}s (a new driver's first) / {med['warm']:.3f}s (warm workers); "
          f"ray.init + first {tasks} {med['first']:.2f}s")


if __name__ == "__main__":
    main()
