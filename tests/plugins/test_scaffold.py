"""``blut recipes new NAME``: a cookbook distribution that installs and passes its own tests,
and the pytest plugin those tests rely on (no conftest, fixtures from the ``pytest11`` entry
point)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import click.testing
import pytest

from blut_core import App
from blut_core.cli import main

Invoke = Callable[..., click.testing.Result]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would have: no test-session leftovers."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "BLUT_")) and k != "PYTHONPATH"}
    return {**env, "BLUT_NO_STALE_CHECK": "1", **extra}


def _venv(where: Path) -> Path:
    """A venv that sees this interpreter's packages (blut, pytest) and installs into itself."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(where)], check=True, capture_output=True, timeout=120)
    return where / "bin" / "python"


def _pip_install_editable(python: Path, project: Path) -> None:
    # Build with the hatchling installed here when there is one; else pip fetches it.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           "--no-deps", *isolation, "-e", str(project)],
                          capture_output=True, text=True, timeout=600, env=_clean_env())
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_a_new_cookbook_installs_and_passes_its_own_tests(invoke: Invoke, tmp_path: Path) -> None:
    project = tmp_path / "blut-cookbook-mybook"
    result = invoke("recipes", "new", "mybook", "--path", str(project), "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made == {"cookbook": "mybook", "distribution": "blut-cookbook-mybook",
                    "package": "blut_cookbook_mybook", "path": str(project),
                    "recipe": "mybook:example", "files": made["files"]}
    assert sorted(made["files"]) == sorted([
        "pyproject.toml", "README.md", "src/blut_cookbook_mybook/__init__.py",
        "src/blut_cookbook_mybook/py.typed", "src/blut_cookbook_mybook/plugin.py",
        "src/blut_cookbook_mybook/pipeline.py", "tests/test_mybook.py"])
    assert not (project / "tests" / "conftest.py").exists()
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "blut-cookbook-mybook"
    assert meta["project"]["entry-points"]["blut.cookbooks"] == {"mybook": "blut_cookbook_mybook.plugin"}

    python = _venv(tmp_path / "venv")
    _pip_install_editable(python, project)
    env = _clean_env(BLUT_HOME=str(tmp_path / "home"))
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project, capture_output=True, text=True, timeout=600, env=env)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout, tests.stdout

    # and blut itself, in that environment, lists and runs the recipe
    listed = subprocess.run([str(python), "-m", "blut_core", "recipes", "list", "--json"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "mybook:example" in [r["name"] for r in json.loads(listed.stdout)]
    ran = subprocess.run([str(python), "-m", "blut_core", "run", "mybook:example", "-p", "items=3000",
                          "--no-progress", "--json"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["outcome"] == "ok" and summary["counts"]["ok"] == 3
    report = Path(summary["run_dir"]) / "stages" / "report" / "out" / "report.md"
    assert report.read_text().startswith("# Summary\n")

    # lint-clean as generated, under the repository's rules
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                           str(Path(__file__).resolve().parents[2] / "pyproject.toml"), "."],
                          cwd=project, capture_output=True, text=True, timeout=120)
    if "No module named ruff" not in ruff.stderr:
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr


@pytest.mark.parametrize(("name", "why"), [
    ("My Book", "try 'my-book'"),
    ("9lives", "must start with a lower-case letter"),
    ("a.b", "try 'a-b'"),
    ("ab-", "distribution 'blut-cookbook-ab-' must end with a letter or digit"),
    ("blut-cookbook-", "is empty"),
    ("über", "must start with a lower-case letter"),
])
def test_a_name_that_is_not_a_distribution_or_python_name_is_refused_in_one_line(
        name: str, why: str, app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes", "new", name, "--path", str(target)], app=app)
    assert exit_info.value.code == 2
    first, *rest = capsys.readouterr().err.strip().splitlines()
    assert first.startswith(f"Error: cookbook name {name!r} ") and why in first, first
    assert rest == ["Hint: use lower-case letters, digits, '-' or '_', e.g. `blut recipes new mybook`"]
    assert not target.exists()


def test_an_installed_cookbook_name_or_a_used_directory_is_refused(
        app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes", "new", "quickstart", "--path", str(tmp_path / "q")], app=app)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        "Error: a cookbook named 'quickstart' is already installed (blut-cookbook-quickstart)\n")
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes", "new", "fresh", "--path", str(used)], app=app)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"Error: {used} already exists and is not an empty directory\n")
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


def test_the_default_path_is_the_distribution_name_here(invoke: Invoke, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("recipes", "new", "blut-cookbook-signal-lab")
    assert result.exit_code == 0, result.output
    project = tmp_path / "blut-cookbook-signal-lab"
    assert (project / "src" / "blut_cookbook_signal_lab" / "plugin.py").is_file()
    assert f"pip install -e {project}" in result.stdout
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["blut.cookbooks"] == {
        "signal-lab": "blut_cookbook_signal_lab.plugin"}
    assert 'name="signal-lab"' in (project / "src/blut_cookbook_signal_lab/plugin.py").read_text()


# -- the pytest plugin a cookbook's tests rely on ---------------------------------------------


def _pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a test module in a directory with no conftest, as a user would."""
    tests = tmp_path / "user-tests"
    tests.mkdir()
    (tests / "test_user.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tests), str(tests)], cwd=tests, capture_output=True,
                          text=True, timeout=600, env=_clean_env())


def test_the_plugin_needs_no_conftest_and_its_failures_say_why(tmp_path: Path) -> None:
    done = _pytest(tmp_path, '''
import pytest

pytestmark = pytest.mark.blut(cookbooks=["blut-cookbook-quickstart"])


def test_app_has_only_the_chosen_cookbook(app, blut_home):
    assert list(app.cookbooks.recipes) == ["quickstart:wordcount"]
    assert str(app.settings.home) == str(blut_home)


def test_run_and_peak(run_recipe, assert_peak_within_declaration):
    summary = run_recipe("quickstart:wordcount", docs=5, words_per_doc=40, report={"top": 3})
    assert summary.outcome == "ok" and len(summary.stages) == 6
    assert_peak_within_declaration(summary, "bigrams")


def test_peak_over_its_declaration_fails(run_recipe, assert_peak_within_declaration):
    summary = run_recipe("quickstart:wordcount", docs=5, words_per_doc=40)
    assert_peak_within_declaration(summary, "bigrams", at_most=0.0001)


@pytest.mark.blut(cookbooks=["nope"])
def test_unknown_cookbook(app):
    pass


def test_blut_app_factory(blut_app):
    assert list(blut_app(cookbooks=[]).cookbooks.recipes) == []
''')
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "1 failed, 3 passed, 1 error" in out, out  # the unknown cookbook fails its setup
    assert "stage 'bigrams' attempt 1 peaked at " in out and "above 0.0001 × its declared" in out
    assert "cookbook 'nope' is not installed (entry points in blut.cookbooks: " in out
    assert "Traceback" not in out


def test_loading_the_plugin_costs_a_pytest_session_nothing_heavy() -> None:
    """Every pytest session where blut is installed loads the plugin: it must stay cheap."""
    code = ("import sys, json, pytest, blut_core.testing.plugin\n"
            "heavy = ('attrs', 'cattrs', 'click', 'duckdb', 'structlog', 'rich', 'psutil',\n"
            "         'blut_core.cli', 'blut_core.host.app', 'blut_core.run')\n"
            "print(json.dumps([m for m in heavy if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=_clean_env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
