"""Running the real ``blut`` console script in tests, with the test cookbook installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from blut_core.testing import installed_distribution

ROOT = Path(__file__).resolve().parents[2]


def blut_argv() -> list[str]:
    exe = Path(sys.executable).with_name("blut")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "blut_core"]


def testbook_site(tmp: Path) -> Path:
    """A directory that, on PYTHONPATH, makes the test cookbook an installed entry point."""
    return installed_distribution(tmp / "testbook-site", "blut-testbook", "0.0",
                                  {"blut.cookbooks": {"testbook": "tests.support.cookbook"}})


def blut_env(home: Path, tmp: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(testbook_site(tmp)), str(ROOT)])
    return {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1",
            "PYTHONPATH": path, **extra}


def run_blut(*args: str, home: Path, tmp: Path, timeout: float = 120,
             **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*blut_argv(), *args], capture_output=True, text=True,
                          env=blut_env(home, tmp, **extra), timeout=timeout)


def start_blut(*args: str, home: Path, tmp: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*blut_argv(), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=blut_env(home, tmp, **extra))
