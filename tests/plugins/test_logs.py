"""``blut logs``: a run's stage logs, one attempt, the tail, following a live run; and the
failed run's summary that names the failing stage, its log and its last lines."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from importlib import metadata as md
from pathlib import Path

import attrs
import pytest

from blut_core import CookbookSpec, Plan, Recipe, RetryPolicy, Stage, StageContext, hookimpl
from blut_core.testing import COOKBOOK_GROUP, entry_points_of, installed_distribution
from tests.support.cli import blut_argv, blut_env

# -- a cookbook of stages that write logs (stage processes import this module) --------------


@attrs.frozen(kw_only=True)
class ChattyParams:
    lines: int = 3
    pause: float = 0.0
    fail_first: bool = False


def chatty(ctx: StageContext) -> None:
    """Print numbered lines to stdout and one to stderr; the first attempt may fail."""
    for i in range(int(ctx.params["lines"])):
        print(f"{ctx.stage} attempt {ctx.attempt} line {i}", flush=True)
        time.sleep(float(ctx.params["pause"]))
    print(f"{ctx.stage} says goodbye on stderr", file=sys.stderr, flush=True)
    if ctx.params["fail_first"] and ctx.attempt == 1:
        raise RuntimeError(f"{ctx.stage} fails on its first attempt")
    (ctx.out_dir / "done").write_text("1")


def quiet(ctx: StageContext) -> None:
    (ctx.out_dir / "done").write_text("1")


def chat(p: ChattyParams) -> Plan:
    params = {"lines": p.lines, "pause": p.pause, "fail_first": p.fail_first}
    return Plan.of(
        Stage.call("talk", chatty, params=params, cache=False,
                   retry=RetryPolicy(max_attempts=2, delay=0.0)),
        Stage.call("hush", quiet, cache=False),
        Stage.call("echo", chatty, params={**params, "fail_first": False}, inputs=["talk"],
                   cache=False))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="logbook", summary="Stages that write logs.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="chat", summary="stages that print", params=ChattyParams, build=chat)


LOGBOOK = md.EntryPoint(name="logbook", value="tests.plugins.test_logs", group=COOKBOOK_GROUP)
TESTBOOK = md.EntryPoint(name="testbook", value="tests.support.cookbook", group=COOKBOOK_GROUP)


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, LOGBOOK, *entry_points_of("blut-cookbook-quickstart", COOKBOOK_GROUP)]


def _run(invoke, *args: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    r = invoke("run", "logbook:chat", *args, "--no-progress", "--json")
    return json.loads(r.stdout)  # type: ignore[no-any-return]


# -- reading the logs of a finished run ----------------------------------------------------


def test_logs_of_a_run_show_every_stage_that_wrote_under_a_header(invoke) -> None:  # type: ignore[no-untyped-def]
    run = _run(invoke)
    r = invoke("logs", str(run["run_id"]))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "==> stage talk, attempt 1, stdout.log <==",
        "talk attempt 1 line 0", "talk attempt 1 line 1", "talk attempt 1 line 2",
        "", "==> stage talk, attempt 1, stderr.log <==", "talk says goodbye on stderr",
        "", "==> stage echo, attempt 1, stdout.log <==",
        "echo attempt 1 line 0", "echo attempt 1 line 1", "echo attempt 1 line 2",
        "", "==> stage echo, attempt 1, stderr.log <==", "echo says goodbye on stderr",
    ]  # hush wrote nothing: no header for it


def test_one_stage_one_stream_and_its_last_lines(invoke) -> None:  # type: ignore[no-untyped-def]
    _run(invoke, "-p", "lines=5")
    r = invoke("logs", "latest", "talk", "--stream", "stdout", "-n", "2")
    assert r.exit_code == 0, r.output
    assert r.stdout == "talk attempt 1 line 3\ntalk attempt 1 line 4\n"  # raw: no header
    both = invoke("logs", "latest", "talk")
    assert both.stdout.splitlines()[0] == "==> stage talk, attempt 1, stdout.log <=="


def test_attempt_picks_an_earlier_try(invoke) -> None:  # type: ignore[no-untyped-def]
    run = _run(invoke, "-p", "fail_first=true")
    assert run["outcome"] == "ok"
    last = invoke("logs", "latest", "talk", "--stream", "stderr")
    assert last.stdout == "talk says goodbye on stderr\n"
    first = invoke("logs", "latest", "talk", "--attempt", "1", "--stream", "stderr")
    assert first.exit_code == 0
    assert "RuntimeError: talk fails on its first attempt" in first.stdout
    assert "talk attempt 1 line 0" in invoke("logs", "latest", "talk", "--attempt", "1").stdout
    assert "talk attempt 2 line 0" in invoke("logs", "latest", "talk").stdout


def test_logs_as_json(invoke) -> None:  # type: ignore[no-untyped-def]
    run = _run(invoke)
    data = json.loads(invoke("logs", "latest", "echo", "--json").stdout)
    assert data["run_id"] == run["run_id"]
    assert [(g["stage"], g["attempt"], g["stream"]) for g in data["logs"]] == [
        ("echo", 1, "stdout"), ("echo", 1, "stderr")]
    assert data["logs"][1]["text"] == "echo says goodbye on stderr\n"
    assert Path(data["logs"][0]["path"]).name == "stdout.log"
    assert data["logs"][0]["size"] == len(data["logs"][0]["text"])


@pytest.mark.parametrize(("args", "message"), [
    (["latest", "nope"], r"Error: run \S+ has no stage 'nope'\nHint: its stages: talk, hush, echo"),
    (["latest", "talk", "--attempt", "3"],
     r"Error: stage 'talk' of run \S+ has no attempt 3\nHint: its attempts: 1"),
    (["latest", "--attempt", "1"], r"Error: --attempt needs a STAGE"),
    (["latest", "talk", "-f", "--json"], r"Error: --json cannot be combined with --follow"),
    (["no-such-run"], r"Error: no run 'no-such-run' under "),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                               message: str) -> None:
    import subprocess

    env = _env(tmp_path)
    subprocess.run([*blut_argv(), "run", "logbook:chat", "--no-progress"], env=env,
                   capture_output=True, timeout=120, check=True)
    r = subprocess.run([*blut_argv(), "logs", *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert re.match(message, r.stderr), r.stderr
    assert "Traceback" not in r.stderr


def test_a_stage_that_did_not_run_has_no_logs_and_says_why(invoke) -> None:  # type: ignore[no-untyped-def]
    invoke("run", "testbook:failing", "--no-progress")
    r = invoke("logs", "latest", "after")
    assert r.exit_code == 0 and r.stdout == ""
    assert "has not run" in r.stderr and "upstream_failed" in r.stderr


# -- following a live run ------------------------------------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    site = installed_distribution(tmp_path / "logbook-site", "blut-logbook", "0.0",
                                  {"blut.cookbooks": {"logbook": "tests.plugins.test_logs"}})
    env = blut_env(tmp_path / "home", tmp_path)
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    return env


def test_follow_prints_a_live_run_as_it_goes_into_the_retry_and_stops_at_its_end(
        tmp_path: Path) -> None:
    import subprocess

    env = _env(tmp_path)
    run = subprocess.Popen([*blut_argv(), "run", "logbook:chat", "-p", "lines=10", "-p",
                            "pause=0.4", "-p", "fail_first=true", "--no-progress"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "home" / "runs"
    deadline = time.monotonic() + 60
    while not any(runs.glob("*/stages/talk/attempts/1/stdout.log")):
        assert time.monotonic() < deadline and run.poll() is None, "the run did not start"
        time.sleep(0.05)
    follow = subprocess.Popen([*blut_argv(), "logs", "latest", "talk", "--stream", "stdout",
                               "-f"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    first = follow.stdout.readline() if follow.stdout else ""
    assert run.poll() is None, "the run ended before anything was followed"
    assert first == "talk attempt 1 line 0\n"
    out = follow.stdout.read() if follow.stdout else ""  # not communicate(): it would skip
    follow.wait(timeout=60)                               # what readline() buffered
    run.wait(timeout=60)
    assert follow.returncode == 0, follow.stderr.read() if follow.stderr else ""
    lines = [first.rstrip("\n"), *out.splitlines()]
    assert lines == [f"talk attempt 1 line {i}" for i in range(10)] + \
        ["", "==> stage talk, attempt 2, stdout.log <=="] + \
        [f"talk attempt 2 line {i}" for i in range(10)]


def test_follow_of_a_whole_run_ends_when_the_run_does(tmp_path: Path) -> None:
    import subprocess

    env = _env(tmp_path)
    run = subprocess.Popen([*blut_argv(), "run", "logbook:chat", "-p", "lines=4", "-p",
                            "pause=0.2", "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    runs = tmp_path / "home" / "runs"
    deadline = time.monotonic() + 60
    while not any(runs.glob("*/status.jsonl")):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    follow = subprocess.run([*blut_argv(), "logs", "latest", "-f"], env=env, capture_output=True,
                            text=True, timeout=60)
    run.wait(timeout=60)
    assert follow.returncode == 0, follow.stderr
    text = follow.stdout
    for stage in ("talk", "echo"):
        assert f"==> stage {stage}, attempt 1, stdout.log <==" in text
        assert all(f"{stage} attempt 1 line {i}\n" in text for i in range(4))
        assert f"{stage} says goodbye on stderr\n" in text


# -- the failed run's summary --------------------------------------------------------------


def test_a_failed_run_names_the_failing_stage_its_log_and_its_last_lines(invoke) -> None:  # type: ignore[no-untyped-def]
    r = invoke("run", "testbook:failing", "--no-progress")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["failed", "bad:"])
    log = re.fullmatch(r"\s+log (\S+/stages/bad/attempts/1/stderr\.log)", lines[at + 1])
    assert log, lines[at + 1]
    tail = Path(log[1]).read_text().splitlines()
    shown = [line.split("| ", 1)[1] for line in lines[at + 2:] if re.match(r"\s+\| ", line)]
    assert shown == [t.rstrip() for t in tail if t.strip()][-len(shown):]
    assert shown[-1] == "RuntimeError: boom after writing output" and 1 < len(shown) <= 8
    run_id = next(ln.split()[1] for ln in lines if ln.startswith("run "))
    assert f"  whole log: blut logs {run_id} bad" in lines
    data = json.loads(invoke("run", "testbook:failing", "--no-progress", "--json").stdout)
    by_name = {s["name"]: s for s in data["stages"]}
    assert by_name["bad"]["log"].endswith("/stages/bad/attempts/1/stderr.log")
    assert by_name["after"]["log"] is None  # it never ran


def test_a_run_ends_with_where_it_is_and_the_commands_that_inspect_it(invoke) -> None:  # type: ignore[no-untyped-def]
    r = invoke("run", "testbook:diamond", "--no-progress")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    run_id = next(ln.split()[1] for ln in lines if ln.startswith("run "))
    assert any(ln.startswith("dir ") and ln.endswith(run_id) for ln in lines)
    shown, report = lines[-2].split(), lines[-1].split()
    assert shown[:4] == ["see", "blut", "runs", "show"] and shown[4] == run_id
    assert report[:3] == ["blut", "runs", "report"] and report[3] == run_id
    for argv in (shown[2:5], report[1:4]):
        assert invoke(*argv).exit_code == 0, argv
