"""The CLI, in-process through click's runner and as the installed console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from blut_core.cli import main
from blut_core.testing import installed_distribution


def test_help_lists_builtin_commands(invoke) -> None:  # type: ignore[no-untyped-def]
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("plan", "plugins", "recipes", "run", "runs"):
        assert re.search(rf"^\s+{name}\s", result.output, re.M), name


def test_plugins_list_json(invoke) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(invoke("plugins", "list", "--json").stdout)
    names = {r["name"]: r for r in rows}
    assert names["launcher-local"]["state"] == "ok" and names["launcher-local"]["builtin"]
    assert names["testbook"]["kind"] == "cookbook"


def test_recipes_list_and_show(invoke) -> None:  # type: ignore[no-untyped-def]
    listed = json.loads(invoke("recipes", "list", "--json").stdout)
    assert {"testbook:diamond", "quickstart:wordcount"} <= {r["name"] for r in listed}
    shown = json.loads(invoke("recipes", "show", "diamond", "--json").stdout)
    params = {p["name"]: p for p in shown["params"]}
    assert params["inner.size"] == {"name": "inner.size", "type": "int", "default": 3,
                                    "required": False, "help": ""}
    text = invoke("recipes", "show", "diamond").output
    assert "inner.label" in text and "float" in text


def test_plan_shows_cache_state_and_runs_nothing(invoke, blut_home) -> None:  # type: ignore[no-untyped-def]
    before = json.loads(invoke("plan", "diamond", "--json").stdout)
    assert [s["cache"] for s in before["stages"]] == ["will_run", "depends", "depends", "depends", "depends"]
    assert not (blut_home / "runs").exists()
    assert invoke("run", "diamond").exit_code == 0
    after = json.loads(invoke("plan", "diamond", "--json").stdout)
    assert {s["cache"] for s in after["stages"]} == {"cached"}
    changed = json.loads(invoke("plan", "diamond", "-p", "inner.label=y", "--json").stdout)
    assert {s["name"]: s["cache"] for s in changed["stages"]} == {
        "a": "cached", "b": "cached", "c": "will_run", "d": "depends", "e": "cached"}


def test_run_summary_and_runs_commands(invoke) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", "diamond")
    assert result.exit_code == 0, result.output
    assert re.search(r"^ok: 5 ran, 0 cached, 0 failed in [\d.]+s", result.output, re.M)
    run_id = re.search(r"^run (\S+)", result.output, re.M).group(1)  # type: ignore[union-attr]
    again = json.loads(invoke("run", "diamond", "--json").stdout)
    assert again["counts"]["cached"] == 5 and again["outcome"] == "ok"
    runs = json.loads(invoke("runs", "list", "--json").stdout)
    assert [r["run_id"] for r in runs] == [again["run_id"], run_id]
    shown = json.loads(invoke("runs", "show", run_id[:-1], "--json").stdout)
    assert shown["state"] == "ok" and shown["stages"]["d"]["state"] == "ok"
    assert shown["params"]["n"] == 1
    for name, st in shown["stages"].items():  # where each stage ran, and under what cap
        assert st["launcher"] == "local", name
        assert st["containment"] in {"cgroup-v2", "cgroup-v1", "systemd", "rlimit", "bare"}, name
        if st["containment"].startswith("cgroup"):
            assert st["cgroup"].startswith("/sys/fs/cgroup/"), (name, st["cgroup"])
    cgroups = [st["cgroup"] for st in shown["stages"].values() if "cgroup" in st]
    assert len(set(cgroups)) == len(cgroups)  # a cgroup of its own for each stage


def test_failed_run_exits_1_and_says_what_failed(invoke) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", "failing")
    assert result.exit_code == 1
    assert "bad: boom after writing output" in result.output
    assert re.search(r"^failed: 2 ran, 0 cached, 2 failed", result.output, re.M)


def test_bad_input_is_one_line_exit_2(capsys, app) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (["run", "diamnod"], "unknown recipe 'diamnod'", "did you mean"),
        (["run", "diamond", "-p", "inner.size=big"], "inner.size", "blut recipes show"),
        (["plan", "cyclic"], "the plan has a cycle: x -> y -> z -> x", "itself"),
        (["runs", "show", "nope"], "no run 'nope'", "blut runs list"),
    ]
    for argv, message, hint in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv, app=app)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, argv
        lines = err.strip().splitlines()
        assert lines[0].startswith("Error: ") and message in lines[0], (argv, err)
        assert lines[-1].startswith("Hint: ") and hint in lines[-1], (argv, err)
        assert "Traceback" not in err


def test_run_warns_loudly_without_containment_unless_nothing_runs(
        capsys, app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLUT_CONTAINMENT", "bare")
    with pytest.raises(SystemExit) as first:
        main(["run", "diamond"], app=app)
    assert first.value.code == 0
    err = capsys.readouterr().err
    assert "WARNING: " in err and "NO MEMORY CONTAINMENT" in err
    with pytest.raises(SystemExit) as again:  # every stage cached: nothing runs, nothing to cap
        main(["run", "diamond"], app=app)
    assert again.value.code == 0
    assert "NO MEMORY CONTAINMENT" not in capsys.readouterr().err


def test_verbose_adds_the_traceback(capsys, app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["-v", "run", "diamnod"], app=app)
    assert "Traceback" in capsys.readouterr().err


def _blut(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1", **env}
    exe = Path(sys.executable).with_name("blut")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "blut_core"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=full, timeout=120)


def test_console_script_runs_quickstart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    first = _blut("run", "quickstart:wordcount", "-p", "docs=20", home=home)
    assert first.returncode == 0, first.stderr
    assert "ok: 6 ran, 0 cached, 0 failed" in first.stdout
    run_dir = Path(re.search(r"^dir (\S+)", first.stdout, re.M).group(1))  # type: ignore[union-attr]
    report = (run_dir / "stages/report/out/report.md").read_text()
    assert report.startswith("# Word count") and "8000 words" in report
    second = _blut("run", "wordcount", "-p", "docs=20", "--json", home=home)
    assert json.loads(second.stdout)["counts"]["cached"] == 6


def test_console_script_bad_input_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    r = _blut("run", "wordcont", home=home)
    assert r.returncode == 2 and "did you mean 'quickstart:wordcount'" in r.stderr
    assert "Traceback" not in r.stderr
    f = tmp_path / "p.toml"
    f.write_text("docs = \n")
    r = _blut("run", "wordcount", "--params", str(f), home=home)
    assert r.returncode == 2 and f"params file {f}, line 1" in r.stderr
    r = _blut("run", "wordcount", "-p", "docs=many", home=home)
    assert r.returncode == 2 and "docs: invalid value" in r.stderr and "expected int" in r.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    r = _blut("run", "wordcount", home=blocker / "sub")
    assert r.returncode == 2 and "not writable" in r.stderr and "Traceback" not in r.stderr


def test_broken_plugin_does_not_break_help(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a broken third-party plugin: a distribution on PYTHONPATH whose module fails to import
    site = installed_distribution(tmp_path / "site", "blut-broken", "1.0",
                                  {"blut.plugins": {"broken": "blut_broken_mod"}})
    (site / "blut_broken_mod.py").write_text("raise ImportError('this plugin is broken')\n")
    env = {"PYTHONPATH": str(site)}
    r = _blut("--help", home=tmp_path / "h", **env)
    assert r.returncode == 0 and "run" in r.stdout
    listed = _blut("plugins", "list", "--json", home=tmp_path / "h", **env)
    row = next(x for x in json.loads(listed.stdout) if x["name"] == "broken")
    assert row["state"] == "failed" and "this plugin is broken" in row["error"]
    strict = _blut("--help", home=tmp_path / "h", BLUT_STRICT_PLUGINS="1", **env)
    assert strict.returncode == 2 and "plugin 'broken' (blut-broken 1.0) failed to load" in strict.stderr


def test_version_has_commit_when_installed_from_git(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = _blut("--version", home=tmp_path)
    assert r.returncode == 0
    assert re.fullmatch(r"blut \d+\.\d+\.\d+(\+[0-9a-f]{10}(-dirty)?)?\n", r.stdout)
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert "+" in r.stdout


def test_log_format_applies_to_plugin_load_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = installed_distribution(tmp_path / "site", "blut-broken", "1.0",
                                  {"blut.plugins": {"broken": "blut_broken_mod"}})
    (site / "blut_broken_mod.py").write_text("raise ImportError('broken on purpose')\n")
    r = _blut("--log-format", "console", "plugins", "list", home=tmp_path / "h",
              PYTHONPATH=str(site))
    assert "plugin_skipped" in r.stderr and not r.stderr.lstrip().startswith("{")
    j = _blut("--log-format", "json", "plugins", "list", home=tmp_path / "h", PYTHONPATH=str(site))
    line = next(ln for ln in j.stderr.splitlines() if "plugin_skipped" in ln)
    assert json.loads(line)["plugin"] == "broken"
