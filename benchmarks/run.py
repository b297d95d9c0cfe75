"""``nox -s bench``: every benchmark module, one after another, each with its baselines."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["bench_core", "bench_broker", "bench_executor", "bench_lineage", "bench_distributed",
           "bench_peers"]


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    wanted = [m for m in MODULES if not argv or any(a in m for a in argv)]
    for name in wanted:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{name}":
                continue
            raise
        print(f"\n##### {name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
