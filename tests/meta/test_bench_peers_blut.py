"""How bench_peers installs and runs blut: the checkout built as a wheel into the run's site
folder (found there, not in the source tree), or, when that fails, the machine's own blut with
one line saying why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.peers import venvs

#: this interpreter's bin folder: it has pip and hatchling, as blut's scratch venv does
HERE_BIN = Path(sys.executable).parent


def _broken_checkout(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling"]\n'
                                         'build-backend = "hatchling.build"\n'
                                         '[project]\nname = "blut"\nversion = "not a version"\n')
    return root


def test_a_checkout_that_does_not_build_falls_back_to_the_machines_blut_saying_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = venvs.choose_blut(tmp_path / "work", HERE_BIN, "", root=_broken_checkout(tmp_path / "src"))
    lines = capsys.readouterr().out.splitlines()
    assert got.venv is None
    assert got.env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "work" / "pycache")
    assert str(venvs.ROOT) in got.env["PYTHONPATH"].split(":")
    assert len(lines) == 1
    assert lines[0].startswith("bench_peers: blut: building and installing ")
    assert "the old way" in lines[0]


def test_a_checkout_that_needs_what_the_venv_lacks_falls_back_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "src"
    (root / "fakeblut").mkdir(parents=True)
    (root / "fakeblut" / "__init__.py").write_text("def main() -> None:\n    pass\n")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "blut"\nversion = "0.0"\ndependencies = ["no-such-dist-for-blut"]\n'
        '[project.scripts]\nblut = "fakeblut:main"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["fakeblut"]\n')
    got = venvs.choose_blut(tmp_path / "work", HERE_BIN, "", root=root)
    assert got.venv is None
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("bench_peers: blut: the venv lacks what ")
    assert "no-such-dist-for-blut" in line
    assert "requirements/blut.txt" in line


def test_a_venv_that_could_not_be_made_falls_back_with_its_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    why = "blut: pip install -r blut.txt failed (is PyPI reachable?): no route"
    got = venvs.choose_blut(tmp_path, None, why)
    assert got.venv is None
    assert capsys.readouterr().out.splitlines() == [
        f"bench_peers: {why}; blut runs the old way instead, on this machine's interpreter and "
        "its editable install (every blut process pays its site-packages' start-up)"]


@pytest.mark.slow
def test_the_wheel_and_the_benchmark_cookbook_are_imported_from_the_runs_site(tmp_path: Path) -> None:
    got, why = venvs.venv_blut(tmp_path, HERE_BIN)
    assert got is not None, why
    site = tmp_path / "site"
    where = subprocess.run([sys.executable, "-c", "import blut_core, benchmarks.peers.pbbench as p; "
                            "print(blut_core.__file__); print(p.__file__)"],
                           env=got.env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert [Path(x).is_relative_to(site) for x in where.stdout.split()] == [True, True]
    assert (site / "blut_core" / "__pycache__").is_dir()  # pip wrote its bytecode
    shown = subprocess.run([*got.argv, "recipes", "list", "--json"], env=got.env,
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "pbbench:fanout" in shown.stdout
    env = dict(got.env, BLUT_HOME=str(tmp_path / "home"), BLUT_LEDGER=str(tmp_path / "ledger.json"))
    ran = subprocess.run([*got.argv, "run", "pbbench:fanout", "-p", "n=1", "--no-progress"],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("ok: 1 ran")
