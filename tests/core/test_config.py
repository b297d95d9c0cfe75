"""blut.toml: the user's and the project's file under the BLUT_* variables, and bad files."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blut_core import BrokerConfig, ConfigError, Settings
from blut_core.broker.ledger import default_ledger_path
from blut_core.host.config import KEYS, user_file
from blut_core.lineage.sinks import configured
from tests.support.cli import ROOT, blut_argv
from tests.support.cli import testbook_site as installed_testbook

USER = """\
# the user's defaults
jobs = 2
[broker]
floor = "3G"
headroom = "128M"
"""
PROJECT = """\
home = ".blut"          # relative to this file

[broker]
floor = "5%"
admission_timeout = 90

[lineage]
sinks = ["duckdb", "jsonl"]

[launcher.local]
forkserver = false

[launcher.slurm]
partition = "gpu"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a blut.toml at its root, and a directory inside it."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "blut.toml").write_text(PROJECT)
    (repo / "src" / "deep").mkdir(parents=True)
    return repo


@pytest.fixture
def user(tmp_path: Path) -> Path:
    path = tmp_path / "xdg" / "blut" / "blut.toml"
    path.parent.mkdir(parents=True)
    path.write_text(USER)
    return path


def _settings(project: Path, user: Path, **env: str) -> Settings:
    return Settings.from_environ({"XDG_CONFIG_HOME": str(user.parent.parent), **env},
                                 cwd=project / "src" / "deep")


def test_variables_override_the_project_file_which_overrides_the_users(project: Path,
                                                                       user: Path) -> None:
    s = _settings(project, user, BLUT_HEADROOM="1G")
    assert s.config is not None
    origin = {v.key: v.origin for v in s.config.rows()}
    assert origin["broker.floor"] == f"{project / 'blut.toml'}:4"           # project over user
    assert origin["jobs"] == f"{user}:2"                                   # the user's only
    assert origin["broker.headroom"] == "env BLUT_HEADROOM"                # env over both
    assert origin["broker.escalation_step"] == "default"
    assert s.config.files == (user, project / "blut.toml")
    assert s.home == project / ".blut"  # a relative path is relative to its file
    assert s.jobs == 2
    # what the broker, the ledger and the lineage sinks read is the merged environment
    broker = BrokerConfig.from_environ(s.environ)
    assert broker.floor_share == 0.05 and broker.headroom == 1 << 30 and broker.wait_timeout == 90
    assert configured(s.environ) == ("duckdb", "jsonl")
    assert s.environ["BLUT_FORKSERVER"] == "0"
    assert s.launcher_options("slurm") == {"partition": "gpu"}
    assert s.launcher_options("ray") == {}


def test_a_blank_variable_leaves_the_file_in_charge(project: Path, user: Path) -> None:
    s = _settings(project, user, BLUT_FLOOR="  ")
    assert BrokerConfig.from_environ(s.environ).floor_share == 0.05


def test_without_files_every_value_is_a_default(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    s = Settings.from_environ({"BLUT_CONFIG": str(tmp_path / "absent.toml")}, cwd=tmp_path)
    assert s.config is not None and s.config.files == ()
    assert {v.origin for v in s.config.rows()} == {"default"}
    assert s.jobs is None and s.home_override is None
    assert default_ledger_path(s.environ) == default_ledger_path({})


def test_the_project_file_is_looked_for_up_to_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / "blut.toml").write_text('jobs = 7\n')  # above the repository: not its file
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "a").mkdir()
    s = Settings.from_environ({"BLUT_CONFIG": str(tmp_path / "none.toml")}, cwd=repo / "a")
    assert s.jobs is None
    (repo / "blut.toml").write_text('jobs = 3\n')
    s = Settings.from_environ({"BLUT_CONFIG": str(tmp_path / "none.toml")}, cwd=repo / "a")
    assert s.jobs == 3


def test_the_user_file_is_in_the_user_config_directory(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    import platformdirs

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    expected = Path(platformdirs.user_config_dir("blut", appauthor=False)) / "blut.toml"
    assert user_file(dict(os.environ)) == expected == tmp_path / "cfg" / "blut" / "blut.toml"
    assert user_file({"BLUT_CONFIG": "~/elsewhere.toml"}) == Path.home() / "elsewhere.toml"


@pytest.mark.parametrize(("text", "line", "message"), [
    ("jobs = 2\n[broker]\nflor = '2G'\n", 3,
     "unknown key 'broker.flor'"),
    ("[brokr]\nfloor = '2G'\n", 2, "unknown key 'brokr.floor'"),
    ("[launcher.local]\nfork_server = true\n", 2, "unknown key 'launcher.local.fork_server'"),
    ("jobs = '4'\n", 1, "jobs: expected a whole number ≥ 1, got '4'"),
    ("jobs = 0\n", 1, "jobs: expected a whole number ≥ 1, got 0"),
    ("\n[broker]\nfloor = '2Gb'\n", 3, "broker.floor: cannot read '2Gb' as a size"),
    ("broker.headroom = '300%'\n", 1, "broker.headroom: expected a fraction such as 0.1 or 10%"),
    ("[broker]\nadmission_timeout = -1\n", 2, "broker.admission_timeout: expected seconds"),
    ("home = 3\n", 1, "home: expected a path (a string), got 3"),
    ("[ledger]\npath = ['x']\n", 2, "ledger.path: expected a path (a string), got ['x']"),
    ("[launcher.local]\nforkserver = 'no'\n", 2,
     "launcher.local.forkserver: expected true or false, got 'no'"),
    ("lineage = { sinks = 3 }\n", 1, "lineage.sinks: expected a list of names"),
    ("[lineage]\ningest = 'later'\n", 2, "lineage.ingest: expected 'deferred' or 'at-end', got 'later'"),
    ("jobs = \n", 1, "not valid TOML"),
])
def test_a_bad_file_is_one_error_naming_file_line_and_key(tmp_path: Path, text: str, line: int,
                                                          message: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "blut.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        Settings.from_environ({"BLUT_CONFIG": str(tmp_path / "none.toml")}, cwd=tmp_path)
    assert err.value.message.startswith(f"{tmp_path / 'blut.toml'}:{line}: {message}"), \
        err.value.message
    assert err.value.exit_code == 2 and err.value.hint


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "blut.toml").write_text("[broker]\nescalation_stp = '1G'\n")
    with pytest.raises(ConfigError) as err:
        Settings.from_environ({"BLUT_CONFIG": str(tmp_path / "none.toml")}, cwd=tmp_path)
    assert err.value.hint is not None and "did you mean 'broker.escalation_step'" in err.value.hint


def test_a_bad_jobs_variable_names_itself(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    s = Settings.from_environ({"BLUT_CONFIG": str(tmp_path / "none.toml"), "BLUT_JOBS": "many"},
                              cwd=tmp_path)
    with pytest.raises(ConfigError, match="env BLUT_JOBS: jobs must be a whole number"):
        _ = s.jobs


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a real ``blut``: no BLUT_* variable unless given, a private
    user config directory, the test cookbook installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUT_")}
    path = os.pathsep.join([str(installed_testbook(tmp_path)), str(ROOT)])
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "BLUT_NO_STALE_CHECK": "1",
            "BLUT_LEDGER": str(tmp_path / "ledger.json"), "PYTHONPATH": path, **extra}


def _blut(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*blut_argv(), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def test_config_show_prints_each_value_and_where_it_came_from(project: Path, user: Path,
                                                              tmp_path: Path) -> None:
    env = _env(tmp_path, BLUT_HEADROOM="1G")
    r = _blut("config", "show", "--json", cwd=project / "src", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    by_key = {v["key"]: v for v in data["values"]}
    assert [v["key"] for v in data["values"]][:len(KEYS)] == [k.name for k in KEYS]
    assert by_key["broker.floor"]["value"] == "5%" and by_key["broker.floor"]["line"] == 4
    assert by_key["broker.floor"]["file"] == str(project / "blut.toml")
    assert by_key["jobs"]["origin"] == f"{user}:2"
    assert by_key["broker.headroom"]["source"] == "env" and by_key["broker.headroom"]["value"] == "1G"
    assert by_key["broker.escalation_step"]["source"] == "default"
    assert by_key["home"]["effective"] == str(project / ".blut")
    assert by_key["launcher.slurm.partition"]["value"] == "gpu"
    assert data["files"] == [{"scope": "user", "path": str(user), "read": True},
                             {"scope": "project", "path": str(project / "blut.toml"), "read": True}]
    text = _blut("config", "show", cwd=project / "src", env=env)
    assert text.returncode == 0, text.stderr
    rows = {line.split()[0]: line.split() for line in text.stdout.splitlines()[1:] if line}
    assert rows["broker.floor"][1:] == ["5%", f"{project / 'blut.toml'}:4"]
    assert rows["broker.headroom"][1:] == ["1G", "env", "BLUT_HEADROOM"]
    assert rows["strict_plugins"][1:] == ["false", "default"]


def test_a_run_uses_the_project_files_home_and_the_process_sees_its_values(
        project: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    r = _blut("run", "testbook:diamond", "--json", cwd=project / "src", env=env)
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)["run_dir"]).parent == project / ".blut" / "runs"
    code = ("import os; from blut_core import Settings; Settings.from_environ(); "
            "print(os.environ['BLUT_FLOOR'], os.environ['BLUT_FORKSERVER'])")
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=project, env=env)
    assert seen.stdout.split() == ["5%", "0"], seen.stderr
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=project, env={**env, "BLUT_FLOOR": "2G"})
    assert seen.stdout.split() == ["2G", "0"], seen.stderr


def test_every_command_fails_on_a_bad_file_with_one_line_and_exit_2(project: Path,
                                                                    tmp_path: Path) -> None:
    (project / "blut.toml").write_text("[broker]\nfloor = 'lots'\n")
    for args in (["config", "show"], ["plugins", "list"], ["run", "testbook:diamond"]):
        r = _blut(*args, cwd=project, env=_env(tmp_path))
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert lines[0] == f"Error: {project / 'blut.toml'}:2: broker.floor: cannot read 'lots' as a size"
        assert len(lines) == 2 and lines[1].startswith("Hint: "), r.stderr
        assert "Traceback" not in r.stderr
    assert not (project / ".blut").exists()


def test_jobs_from_the_environment_or_file_bound_a_run(tmp_path: Path) -> None:
    """``BLUT_JOBS=1`` (or ``jobs = 1`` in blut.toml) runs one stage at a time, as ``-j 1`` does."""
    from tests.support.cli import run_blut

    home = tmp_path / "home"
    r = run_blut("run", "testbook:memload", "-p", "stages=3", "-p", "footprint=64M", "-p", "mb=8",
                 "-p", "seconds=0.4", "--no-progress", home=home, tmp=tmp_path, BLUT_JOBS="1")
    assert r.returncode == 0, r.stderr
    (status,) = home.glob("runs/*/status.jsonl")
    starts = [e["t"] for e in map(json.loads, status.read_text().splitlines())
              if e["event"] == "stage_started"]
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.35, f"stages overlapped under BLUT_JOBS=1: starts {starts}"
