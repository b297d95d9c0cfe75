"""Timing helpers for blut's benchmarks: medians of repeated runs, printed as a table."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def blut_exe() -> list[str]:
    """The installed console script next to this interpreter (no version-manager shims)."""
    exe = Path(sys.executable).with_name("blut")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "blut_core"]


def time_call(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def time_process(argv: Sequence[str], repeat: int, env: dict[str, str] | None = None) -> list[float]:
    full = {**os.environ, **(env or {})}

    def once() -> None:
        subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=full, check=True)

    once()  # warm the page cache
    return time_call(once, repeat)


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def report(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    print(f"\n== {title}")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for a, b, c in rows:
        print(f"  {a:<{w0}}  {b:>{w1}}  {c}")
