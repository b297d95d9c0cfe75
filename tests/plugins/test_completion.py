"""Shell completion: recipe names, run ids and stage names, driven the way bash drives it
(``_BLUT_COMPLETE=bash_complete COMP_WORDS=… COMP_CWORD=…``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click.testing
import pytest

from blut_core import App
from blut_core.cli import cli

SMALL = ["-p", "docs=3", "-p", "words_per_doc=20", "-p", "vocabulary=20"]


def complete(app: App, line: str, shell: str = "bash") -> list[str]:
    """What ``blut`` offers for the last word of ``line`` (``"blut run qu"``; a trailing space
    completes a new, empty word)."""
    words = line.split(" ")
    runner = click.testing.CliRunner()
    result = runner.invoke(cli, [], obj=app, prog_name="blut", env={
        "_BLUT_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
    assert result.exit_code == 0, (result.output, result.exception)
    if shell == "bash":
        return [item.split(",", 1)[1] for item in result.stdout.splitlines() if item]
    return result.stdout.splitlines()


@pytest.fixture
def two_runs(invoke: click.testing.CliRunner, app: App) -> list[str]:
    ids = []
    for seed in (1, 2):
        result = invoke("run", "quickstart:wordcount", *SMALL, "-p", f"seed={seed}", "--no-progress",
                        "--json")
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout)["run_id"])
    return ids


@pytest.mark.parametrize("command", ["run", "plan", "recipes show", "broker estimate"])
def test_recipe_names_complete(app: App, command: str) -> None:
    assert complete(app, f"blut {command} quick") == ["quickstart:wordcount"]
    offered = complete(app, f"blut {command} ")
    assert "quickstart:wordcount" in offered and "wordcount" in offered  # bare: it is unique
    assert "testbook:diamond" in offered
    assert complete(app, f"blut {command} testbook:d") == ["testbook:deterministic", "testbook:diamond"]
    assert complete(app, f"blut {command} nothing-like-it") == []


def test_zsh_gets_each_recipe_with_its_summary(app: App) -> None:
    lines = complete(app, "blut run quickstart:", shell="zsh")
    assert lines == ["plain", "quickstart\\:wordcount",
                     "Generate a corpus, count words and bigrams, write a report."]


@pytest.mark.parametrize("command", ["runs show", "resume", "cancel", "metrics", "runs report",
                                     "runs diff", "runs diff latest"])
def test_run_ids_complete_newest_first(app: App, two_runs: list[str], command: str) -> None:
    first, second = two_runs
    assert complete(app, f"blut {command} ") == ["latest", second, first]
    assert complete(app, f"blut {command} {second[:-2]}") == [second]
    assert complete(app, f"blut {command} lat") == ["latest"]


def test_stage_names_of_the_run_given_complete(app: App, two_runs: list[str]) -> None:
    stages = ["generate", "tokenize", "sort", "count", "bigrams", "report"]
    assert complete(app, f"blut metrics {two_runs[0]} --stage ") == stages
    assert complete(app, "blut metrics latest --stage b") == ["bigrams"]
    assert complete(app, f"blut metrics --final {two_runs[1][:-1]} --stage to") == ["tokenize"]
    assert complete(app, "blut metrics no-such-run --stage ") == []


def test_completion_offers_nothing_rather_than_failing(app: App, blut_home: Path) -> None:
    blut_home.mkdir(parents=True)
    (blut_home / "runs").write_text("not a directory")
    assert complete(app, "blut runs show ") == []
    assert complete(app, "blut metrics latest --stage ") == []


def test_the_installed_command_completes(tmp_path: Path) -> None:
    """The console script itself answers completion (and prints the script to source)."""
    exe = Path(sys.executable).with_name("blut")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "blut_core"]
    env = {**os.environ, "BLUT_HOME": str(tmp_path / "home"), "BLUT_NO_STALE_CHECK": "1"}
    source = subprocess.run(argv, env={**env, "_BLUT_COMPLETE": "bash_source"}, capture_output=True,
                            text=True, timeout=60)
    assert source.returncode == 0, source.stderr
    assert "_blut_completion()" in source.stdout and "complete -o nosort -F _blut_completion blut" \
        in source.stdout
    done = subprocess.run(argv, env={**env, "_BLUT_COMPLETE": "bash_complete",
                                     "COMP_WORDS": "blut run quickstart:", "COMP_CWORD": "2"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "plain,quickstart:wordcount" in done.stdout.splitlines()
    commands = subprocess.run(argv, env={**env, "_BLUT_COMPLETE": "bash_complete",
                                         "COMP_WORDS": "blut reci", "COMP_CWORD": "1"},
                              capture_output=True, text=True, timeout=60)
    assert commands.stdout.splitlines() == ["plain,recipes"]
