"""The workloads for dask's local threaded scheduler (2 workers).

  python daskwf.py {fanout|chain|pycall} [N]

Dask has no persistent cross-run cache, so there is no W4 (re-run) for it.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import dask
from dask import delayed


def stage(i: int) -> int:
    subprocess.run(["true"], check=True)
    return i


def link(prev: int) -> int:
    subprocess.run(["true"], check=True)
    return prev + 1


def noop(i: int) -> int:
    return i


def build(kind: str, n: int) -> list[Any]:
    if kind == "fanout":
        return [delayed(stage)(i) for i in range(n)]
    if kind == "chain":
        x: Any = 0
        for _ in range(n):
            x = delayed(link)(x)
        return [x]
    if kind == "pycall":
        return [delayed(noop)(i) for i in range(n)]
    raise SystemExit(f"unknown workload {kind}")


def main() -> None:
    kind = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else (50 if kind == "chain" else 200)
    tasks = build(kind, n)
    out = dask.compute(*tasks, scheduler="threads", num_workers=2)
    assert len(out) == len(tasks)


if __name__ == "__main__":
    main()
