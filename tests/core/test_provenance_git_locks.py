"""Recording a run's git provenance never writes to the user's repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from blut_core.run import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def test_git_status_of_a_recipe_tree_leaves_its_index_untouched(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    recipe = repo / "recipe.py"
    recipe.write_text("x = 1\n")
    _git(repo, "add", "recipe.py")
    _git(repo, "commit", "-q", "-m", "one")
    index = repo / ".git" / "index"
    later = time.time() + 5
    os.utime(recipe, (later, later))  # stale stat data: a plain `git status` rewrites the index
    before = index.stat().st_mtime_ns, index.read_bytes()

    data = provenance.collect(recipe, [])

    assert data["recipe_git"]["commit"] and data["recipe_git"]["dirty"] is False
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before
    assert not (repo / ".git" / "index.lock").exists()


def test_a_gathering_stopped_early_leaves_no_index_lock(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    for i in range(300):  # enough files that the stop comes while git still reads them
        (repo / f"f{i}.txt").write_text(str(i))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "many")
    later = time.time() + 5
    for i in range(300):
        os.utime(repo / f"f{i}.txt", (later, later))
    for i in range(40):
        gathering = provenance.start(repo / "f0.txt")
        time.sleep(i / 10000)  # stopped at a different moment of git's work each time
        gathering.close()  # a run that ended (bad input, refused) before provenance was read
        assert not (repo / ".git" / "index.lock").exists(), f"after {i / 10:.1f} ms"
        for j in range(300):  # stale again, in case that status did refresh the index
            os.utime(repo / f"f{j}.txt", (later + i, later + i))
    _git(repo, "status")  # and git still works there
