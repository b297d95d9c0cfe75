"""A small box on a big machine: ``blut`` run inside a memory cgroup of its own.

The probe reads the limit of the cgroup blut runs in as the box, and stages' cages are made
under it, so a real ``blut run`` in a 3 GiB cgroup behaves as on a 3 GiB machine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core.testing import in_box, installed_distribution
from blut_core.testing import memory_box as testing_box
from tests.support.cli import ROOT, blut_argv


def _base() -> tuple[int, str]:
    from blut_plugins.cgroup.cage import cgroup_base

    for version in (1, 2):
        base = cgroup_base(version)
        if base and os.path.isdir(base) and os.access(base, os.W_OK):
            return version, base
    pytest.skip("no writable memory cgroup to make a box in")


@contextlib.contextmanager
def memory_box(limit: int) -> Iterator[Path]:
    """A child memory cgroup of blut's cgroup base, limited to ``limit`` bytes (no swap)."""
    with testing_box(limit, under=_base()) as box:
        yield box


def memtest_env(home: Path, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``blut`` subprocess that sees the memtest cookbook installed."""
    site = installed_distribution(tmp / "memtest-site", "blut-memtest", "0.0",
                                  {"blut.cookbooks": {"memtest": "tests.broker.memcook"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUT_")}
    return {**env, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1",
            "BLUT_LEDGER": str(tmp / "ledger" / "ledger.json"),
            "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **extra}


def run_in_box(box: Path, *args: str, home: Path, tmp: Path, timeout: float = 120,
               **extra: str) -> subprocess.CompletedProcess[str]:
    """``blut ARGS`` started inside ``box`` (it joins before it ``exec``s)."""
    return subprocess.run(in_box(box, [*blut_argv(), *args]), capture_output=True, text=True,
                          timeout=timeout, env=memtest_env(home, tmp, **extra))
