"""A run's provenance: the commit, dirtiness and root of the work trees of its recipe and of blut."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from blut_core.run import provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(src: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(src), "-c", "user.name=blut", "-c",
                           "user.email=blut@example.org", "-c", "commit.gpgsign=false", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@needs_git
def test_git_state_names_commit_dirtiness_and_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    assert provenance.git_state(repo / "pkg") == {"commit": None, "dirty": None, "root": None}
    _git(repo, "init", "-q")
    assert provenance.git_state(repo / "pkg") == {"commit": None, "dirty": None, "root": None}  # no commit
    (repo / "pkg" / "recipe.py").write_text("x = 1\n")
    _git(repo, "add", "pkg/recipe.py")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "untracked.txt").write_text("not part of the tree's state\n")
    state = provenance.git_state(repo / "pkg" / "recipe.py")
    assert state == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False,
                     "root": _git(repo, "rev-parse", "--show-toplevel")}
    (repo / "pkg" / "recipe.py").write_text("x = 2\n")
    assert provenance.git_state(repo / "pkg")["dirty"] is True
    _git(repo, "commit", "-q", "-am", "second")             # a later run of this process sees it
    assert provenance.git_state(repo / "pkg") == {"commit": _git(repo, "rev-parse", "HEAD"),
                                                  "dirty": False, "root": state["root"]}
    assert provenance.git_state(repo)["commit"] != state["commit"]


@needs_git
def test_git_status_started_early_is_collected_or_stopped(tmp_path: Path) -> None:
    """A run starts its provenance's `git status` before it sets up the broker and the
    launcher; the set-up collects it, and a run refused before its set-up stops it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "recipe.py").write_text("x = 1\n")
    _git(repo, "add", "recipe.py")
    _git(repo, "commit", "-q", "-m", "first")
    gathering = provenance.start(repo / "recipe.py")
    data = gathering.finish([])
    assert data["recipe_git"] == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False,
                                  "root": _git(repo, "rev-parse", "--show-toplevel")}
    assert data == {**provenance.collect(repo / "recipe.py", []), "argv": data["argv"]}
    refused = provenance.start(repo / "recipe.py")
    running = [p for p in refused.started.values() if p is not None]
    assert running
    refused.close()
    assert all(p.returncode is not None for p in running)  # reaped: no git left behind


def test_the_platform_is_recorded_without_starting_a_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """platform.platform() starts `uname -p` for the processor's name; a run records the same
    text (where that name is unknown, as on Debian) from os.uname() alone."""
    import platform

    expected = platform.platform() if platform.processor() in ("", "unknown") else None

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(subprocess, "check_output", no_process)
    text = provenance.platform_text()
    assert text.startswith(f"{os.uname().sysname}-{os.uname().release}-{os.uname().machine}")
    if expected is not None:
        assert text == expected
