"""The sbatch command and batch script of a job: values, rounding, and quoting that holds.

The quoting tests run what was rendered, without Slurm: the script under bash, and the
whole submission through a stand-in ``sbatch`` that reads its options as sbatch does and
runs the script from its standard input in ``--chdir``. Shell metacharacters, quotes,
newlines and ``$()`` go through every field; a canary file shows that none was executed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("blut_launcher_slurm",
                    reason="not installed (pip install -e packages/blut-launcher-slurm)")

from blut_launcher_slurm.script import (
    MIB,
    BatchJob,
    job_name_for,
    log_pattern,
    mem_mib,
    render_script,
    sbatch_argv,
    sbatch_environment,
    slurm_time,
)
from blut_launcher_slurm.settings import SlurmSettings

NASTY = [
    "plain",
    "two words",
    "quote's",
    'double"quote',
    "$(touch CANARY)",
    "`touch CANARY`",
    "${IFS}$HOME$((1+1))",
    "a;touch CANARY;b",
    "a && touch CANARY || touch CANARY",
    "x | tee CANARY > CANARY < /dev/null &",
    "line\nbreak\n\n",
    "carriage\rreturn\ttab",
    "back\\slash\\",
    "$'\\x41'",
    "!! !$ ^a^b",
    "*?[a-z]~ #comment",
    "-n",
    "--",
    "'",
    "",
    "percent %j %x %% %",
    "ünïcødé ✓",
]
PROBE = (
    "import json, os, sys\n"
    "env = {k: v for k, v in os.environ.items() if k.startswith('NASTY')}\n"
    "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': env}, open(os.environ['PROBE_OUT'], 'w'))\n"
)


def job(tmp_path: Path, **kw: object) -> BatchJob:
    values: dict[str, object] = dict(
        job_name=job_name_for("r1"), run_tag="r1", argv=("true",), workdir=str(tmp_path),
        stdout=str(tmp_path / "out"), stderr=str(tmp_path / "err"),
    )
    values.update(kw)
    return BatchJob(**values)  # type: ignore[arg-type]


def test_the_sbatch_command(tmp_path: Path) -> None:
    j = job(tmp_path, memory_cap=100 * MIB + 1, cpus=2, hard_timeout=90, run_tag="run-7",
            job_name="blut.run-7")
    settings = SlurmSettings(partition="debug,big", account="lab", qos="high",
                             extra_sbatch_args=("--constraint=fast", "--exclusive"))
    assert sbatch_argv(j, settings, "/x/job.sh") == (
        "sbatch", "--parsable", "--job-name=blut.run-7", "--nodes=1", "--ntasks=1", "--cpus-per-task=2",
        "--mem=101M", "--time=0-00:02:00", f"--output={tmp_path}/out", f"--error={tmp_path}/err",
        f"--chdir={tmp_path}", "--export=ALL", "--no-requeue", "--partition=debug,big", "--account=lab",
        "--qos=high", "--constraint=fast", "--exclusive", "/x/job.sh",
    )


def test_no_cap_no_timeout_no_settings_leave_them_to_slurm(tmp_path: Path) -> None:
    argv = sbatch_argv(job(tmp_path), SlurmSettings())
    assert not any(a.startswith(("--mem", "--time", "--partition", "--account", "--qos")) for a in argv)
    assert argv[-1] == "--no-requeue"  # no script path: sbatch reads it from stdin


@pytest.mark.parametrize(("cap", "mib"), [(1, 1), (MIB, 1), (MIB + 1, 2), (100 * MIB, 100), (3 << 30, 3072)])
def test_mem_rounds_up_to_whole_mib(cap: int, mib: int) -> None:
    assert mem_mib(cap) == mib


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "0-00:01:00"), (59, "0-00:01:00"), (60, "0-00:01:00"), (60.2, "0-00:02:00"),
    (3600, "0-01:00:00"), (3601, "0-01:01:00"), (86400, "1-00:00:00"), (90061, "1-01:02:00"),
    (10 * 86400 + 59 * 60, "10-00:59:00"),
])
def test_time_is_d_hh_mm_ss_rounded_up_to_minutes(seconds: float, text: str) -> None:
    assert slurm_time(seconds) == text


def test_log_paths_escape_slurm_replacement_symbols() -> None:
    assert log_pattern("/logs/%j/a%%b") == "/logs/%%j/a%%%%b"
    with pytest.raises(ValueError, match="backslash"):
        log_pattern("/logs/a\\b")


def test_the_script_exports_enters_and_execs(tmp_path: Path) -> None:
    text = render_script(job(tmp_path, argv=("prog", "a b"), env={"A": "1", "B": "x y"}))
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "export A=1" in lines and "export B='x y'" in lines and "export SLURM_EXPORT_ENV=ALL" in lines
    assert lines[-1] == "exec -- prog 'a b'"
    assert any(line.startswith(f"cd -- {tmp_path} ||") for line in lines)


def test_a_stage_may_set_slurm_export_env_itself(tmp_path: Path) -> None:
    text = render_script(job(tmp_path, env={"SLURM_EXPORT_ENV": "NONE"}))
    assert "export SLURM_EXPORT_ENV=NONE" in text.splitlines()
    assert "SLURM_EXPORT_ENV=ALL" not in text


def nasty_job(tmp_path: Path) -> tuple[BatchJob, Path, dict[str, str]]:
    workdir = tmp_path / "wd $(touch CANARY) ' \" `x` \n;|&"
    workdir.mkdir()
    out = tmp_path / "probe.json"
    env = {f"NASTY_{i}": value for i, value in enumerate(NASTY)}
    env["PROBE_OUT"] = str(out)
    env["PATH"] = os.environ["PATH"]
    j = job(tmp_path, argv=(sys.executable, "-c", PROBE, *NASTY), workdir=str(workdir), env=env,
            stdout=str(tmp_path / "o $(touch CANARY) %j\n"),
            stderr=str(tmp_path / "e `touch CANARY` %%"))
    return j, out, env


def canaries(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("CANARY*")] + [str(p) for p in Path.cwd().glob("CANARY*")]


def test_metacharacters_in_every_field_reach_the_stage_verbatim(tmp_path: Path) -> None:
    j, out, env = nasty_job(tmp_path)
    script = tmp_path / "job.sh"
    script.write_text(render_script(j))
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, env={"PATH": os.environ["PATH"]},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    got = json.loads(out.read_text())
    assert got["argv"] == NASTY
    assert got["cwd"] == j.workdir
    assert got["env"] == {k: v for k, v in env.items() if k.startswith("NASTY")}
    assert canaries(tmp_path) == []


STUB_SBATCH = r'''
import json, os, subprocess, sys
opts, script = {}, None
for arg in sys.argv[1:]:
    if arg.startswith("--"):
        name, _, value = arg.partition("=")
        opts[name] = value
    else:
        script = arg
text = open(script).read() if script else sys.stdin.read()
json.dump({"opts": opts, "env": dict(os.environ)}, open(os.environ["STUB_RECORD"], "w"))
# what slurmstepd does with the job: run the script in --chdir, logs opened by name
out = opts["--output"].replace("%%", "%")
err = opts["--error"].replace("%%", "%")
with open(out, "w") as o, open(err, "w") as e:
    rc = subprocess.run(["bash", "-s"], input=text, text=True, cwd=opts["--chdir"],
                        stdout=o, stderr=e).returncode
print("4242")
sys.exit(rc)
'''


def test_a_whole_submission_through_a_stand_in_sbatch(tmp_path: Path) -> None:
    j, out, env = nasty_job(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "sbatch"
    stub.write_text(f"#!{sys.executable}\n{STUB_SBATCH}")
    stub.chmod(0o755)
    record = tmp_path / "record.json"
    submitter = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_CONF": "/x/slurm.conf",
                 "SBATCH_PARTITION": "not-this", "SECRET_OF_THE_DRIVER": "no", "STUB_RECORD": str(record)}
    sub_env = sbatch_environment(submitter)
    assert sub_env == {"PATH": submitter["PATH"], "SLURM_CONF": "/x/slurm.conf"}
    result = subprocess.run(sbatch_argv(j, SlurmSettings()), input=render_script(j), text=True,
                            capture_output=True, env={**sub_env, "STUB_RECORD": str(record)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4242"
    seen = json.loads(record.read_text())
    assert seen["opts"]["--chdir"] == j.workdir
    assert seen["opts"]["--job-name"] == "blut.r1"
    assert "SECRET_OF_THE_DRIVER" not in seen["env"] and "SBATCH_PARTITION" not in seen["env"]
    got = json.loads(out.read_text())
    assert got["argv"] == NASTY and got["cwd"] == j.workdir
    assert got["env"] == {k: v for k, v in env.items() if k.startswith("NASTY")}
    assert Path(j.stdout).exists() and Path(j.stderr).exists()  # the names Slurm makes of the patterns
    assert canaries(tmp_path) == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("run_tag", "a b", "run_tag: must be 1-64"),
    ("run_tag", "$(x)", "run_tag"),
    ("run_tag", "", "run_tag"),
    ("run_tag", "-lead", "run_tag"),
    ("run_tag", "x" * 65, "run_tag"),
    ("job_name", "blut.r1;x", "job_name: must be 1-128"),
    ("job_name", "blut.r1\n", "job_name"),
    ("job_name", "blut.other", "does not contain the run tag"),
    ("argv", (), "argv: must not be empty"),
    ("argv", ("",), "argv: the program"),
    ("argv", ("a", "b\0c"), "argv: contains a NUL"),
    ("argv", ("a", 3), "argv: must hold strings"),
    ("workdir", "", "workdir: must be a non-empty path"),
    ("stdout", "/a\\b", "stdout: Slurm drops backslashes"),
    ("stderr", "/a\0b", "stderr: contains a NUL"),
    ("env", {"1BAD": "x"}, "env: '1BAD' is not a variable name"),
    ("env", {"A-B": "x"}, "env: 'A-B'"),
    ("env", {"A": "x\0"}, "env: A: contains a NUL"),
    ("env", {"A": 1}, "env: A must be a string"),
    ("memory_cap", 0, "memory_cap: must be a positive number of bytes"),
    ("memory_cap", -5, "memory_cap"),
    ("memory_cap", 1.5, "memory_cap"),
    ("memory_cap", True, "memory_cap"),
    ("cpus", 0, "cpus: must be a whole number of CPUs"),
    ("cpus", 1.5, "cpus"),
    ("hard_timeout", 0, "hard_timeout: must be a positive number of seconds"),
    ("hard_timeout", float("inf"), "hard_timeout"),
    ("hard_timeout", float("nan"), "hard_timeout"),
])
def test_bad_values_are_refused_naming_the_field(tmp_path: Path, field: str, value: object,
                                                message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        job(tmp_path, **{field: value})
    assert "\n" not in str(info.value).strip()


def test_a_job_is_frozen_and_its_env_cannot_change(tmp_path: Path) -> None:
    source = {"A": "1"}
    j = job(tmp_path, env=source)
    source["A"] = "2"
    assert j.env["A"] == "1"
    with pytest.raises(TypeError):
        j.env["A"] = "3"  # type: ignore[index]
    with pytest.raises(AttributeError):
        j.cpus = 3  # type: ignore[misc]
