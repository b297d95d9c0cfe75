"""Fixtures of the bad-input tests: the bad cookbook installed, blut run in-process, and small
file systems mounted by the test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from importlib import metadata as md
from pathlib import Path

import pytest

from blut_core import App
from blut_core.cli import main
from tests.core.conftest import TESTBOOK
from tests.support.badbook import BADBOOK, Cli


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, BADBOOK]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``blut ARGV`` in-process against ``app``: (exit code, stdout, stderr)."""
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")  # an install older than the tree says so

    def _cli(app: App, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(argv), app=app)
        out, err = capsys.readouterr()
        code = info.value.code
        return (code if isinstance(code, int) else 1), out, err

    return _cli


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``small_fs(name, size="1m", ro=False)``: a tmpfs mounted at ``tmp_path/name``."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only tmpfs needs root")
    mounted: list[Path] = []

    def _mount(name: str, size: str = "1m", ro: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield _mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
