"""``blut schedule``: install, list, fire, remove, through the real ``blut`` and real backends.

The cron backend edits this user's real crontab (the fixture keeps a copy and puts it back);
a firing runs the crontab line itself with ``sh`` and a cron-like environment. systemd
units are checked with systemd's own verifier. Names, params and calendars full of shell
metacharacters and newlines either are refused, with nothing changed, or arrive intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata as md
from pathlib import Path

import attrs
import pytest

from blut_core import App, ConfigError, CookbookSpec, Plan, Recipe, Stage, hookimpl
from blut_core.cli import main
from blut_core.store import read_events
from blut_core.testing import COOKBOOK_GROUP
from blut_plugins.schedule.model import Entry
from blut_plugins.schedule.systemd import SystemdTimers, render
from tests.support import stages
from tests.support.cli import blut_argv, blut_env

EVIL = "x'; touch {canary}; echo \"$(touch {canary})\" `touch {canary}` %s\n* * * * * touch {canary} #"
FOREIGN = ("# someone else's crontab: blut must keep it as it is\nMAILTO=\"\"\n"
           "0 4 * * * /bin/true nightly-backup # not ours\n\n@reboot /bin/true\n")

needs_crontab = pytest.mark.skipif(shutil.which("crontab") is None,
                                   reason="the crontab command is not installed (apt-get install cron)")


# -- a cookbook with a recipe that declares its calendar ------------------------------------


@attrs.frozen(kw_only=True)
class Labelled:
    label: str = "x"


def labelled(p: Labelled) -> Plan:
    return Plan.of(Stage.call("a", stages.emit, params={"label": p.label}))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="schedbook", summary="Recipes with calendars.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="nightly", summary="declares its calendar", params=Labelled, build=labelled,
                 calendar="daily")
    yield Recipe(name="bad-calendar", summary="declares a calendar cron cannot read",
                 params=Labelled, build=labelled, calendar="every full moon")


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [md.EntryPoint(name="schedbook", value="tests.plugins.test_schedule", group=COOKBOOK_GROUP)]


# -- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def crontab_held(timeout: float = 600) -> Iterator[None]:
    """This user's crontab for this test alone: test sessions running at once take turns."""
    fd = os.open(Path(tempfile.gettempdir()) / f"blut-crontab-tests-{os.getuid()}.lock",
                 os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.skip("another test session has held the crontab for too long")
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


@pytest.fixture
def crontab() -> Iterator[str]:
    """This user's crontab, holding someone else's lines for the test; put back afterwards."""
    with crontab_held():
        before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
        saved = before.stdout if before.returncode == 0 else None
        subprocess.run(["crontab", "-"], input=FOREIGN, text=True, check=True)
        try:
            yield FOREIGN
        finally:
            if saved is None:
                subprocess.run(["crontab", "-r"], capture_output=True)
            else:
                subprocess.run(["crontab", "-"], input=saved, text=True, check=True)


def current_crontab() -> str:
    done = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def blut(*args: str, home: Path, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**blut_env(home, tmp, **env), "BLUT_LEDGER": str(tmp / "ledger" / "ledger.json")}
    return subprocess.run([*blut_argv(), *args], capture_output=True, text=True, env=full,
                          timeout=120, stdin=subprocess.DEVNULL)


def our_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "# blut-schedule:" in ln]


def as_cron_would(line: str, **extra: str) -> subprocess.Popen[str]:
    """Run a crontab line's command the way cron does: ``sh -c`` with cron's environment."""
    fields = line.split(None, 1 if line.startswith("@") else 5)
    command = fields[-1].replace("\\%", "%")
    env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": str(Path.home()),
           "LOGNAME": "root", **extra}
    return subprocess.Popen(["/bin/sh", "-c", command], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def scheduled_runs(home: Path) -> dict[str, str]:
    """run id -> the schedule named in its status stream."""
    out = {}
    for status in (home / "runs").glob("*/status.jsonl"):
        for ev in read_events(status):
            if ev.get("event") == "run_scheduled":
                out[status.parent.name] = ev["schedule"]
    return out


# -- cron ---------------------------------------------------------------------------------


@needs_crontab
def test_cron_schedule_installs_fires_as_cron_would_and_is_removed(crontab: str, blut_home: Path,
                                                                    tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    evil = EVIL.format(canary=canary)
    done = blut("schedule", "install", "testbook:diamond", "--calendar", "*/5 * * * *",
                "--name", "nightly-diamond", "-p", f"inner.label={evil}", "--json",
                home=blut_home, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    installed = json.loads(done.stdout)
    assert installed["backend"] == "cron" and installed["native_calendar"] == "*/5 * * * *"
    text = current_crontab()
    assert text.startswith(FOREIGN), "someone else's lines are kept as they were"
    [line] = our_lines(text)
    assert line.startswith("*/5 * * * * ") and line.endswith(" # blut-schedule:nightly-diamond")
    assert "touch" not in text and "pwned" not in text, "params never reach the crontab"
    listed = json.loads(blut("schedule", "list", "--json", home=blut_home, tmp=tmp_path).stdout)
    assert [(r["name"], r["state"], r["recipe"]) for r in listed] == [
        ("nightly-diamond", "installed", "testbook:diamond")]

    fired = as_cron_would(line)
    assert fired.wait(timeout=120) == 0, fired.communicate()
    [(run_id, schedule)] = scheduled_runs(blut_home).items()
    assert schedule == "nightly-diamond"
    params = json.loads((blut_home / "runs" / run_id / "params.json").read_text())
    assert params["inner"]["label"] == evil, "the param arrives exactly as given"
    assert not canary.exists(), "nothing in a param was run by a shell"
    runs = json.loads(blut("runs", "list", "--json", home=blut_home, tmp=tmp_path).stdout)
    assert [(r["run_id"], r["state"]) for r in runs] == [(run_id, "ok")]
    listed = json.loads(blut("schedule", "list", "--json", home=blut_home, tmp=tmp_path).stdout)
    assert listed[0]["last_run"] == run_id and listed[0]["last"]["outcome"] == "ok"
    log = (blut_home / "schedules" / "nightly-diamond.log").read_text()
    assert f"run {run_id} ok" in log
    report = blut("runs", "report", run_id, "-o", "-", home=blut_home, tmp=tmp_path).stdout
    assert "<tr><th>schedule</th><td>nightly-diamond</td></tr>" in report
    from blut_plugins.tui import data

    assert [(r.run_id, r.schedule) for r in data.runs(App.from_environment(
        {"BLUT_HOME": str(blut_home)}))] == [(run_id, "nightly-diamond")]

    removed = blut("schedule", "remove", "nightly-diamond", home=blut_home, tmp=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert current_crontab() == FOREIGN
    assert json.loads(blut("schedule", "list", "--json", home=blut_home, tmp=tmp_path).stdout) == []


@needs_crontab
def test_bad_input_is_one_line_exit_2_and_touches_nothing(crontab: str, blut_home: Path,
                                                         tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    ok = blut("schedule", "install", "testbook:diamond", "--calendar", "daily", "--name", "kept",
              home=blut_home, tmp=tmp_path)
    assert ok.returncode == 0, ok.stderr
    before = current_crontab()
    definition = (blut_home / "schedules" / "kept.json").read_bytes()
    cases = [
        (["--name", "a;touch x"], "schedule name 'a;touch x' is not allowed"),
        (["--name", "a\nb"], "is not allowed"),
        (["--name", "../etc"], "is not allowed"),
        (["--calendar", f"* * * * *; touch {canary}"], "is not a cron expression (it has 7 fields"),
        (["--calendar", f"0 0 * * *\n* * * * * touch {canary}"], "contains a newline"),
        (["--calendar", "61 * * * *"], "'61' is not a valid minute (0-59)"),
        (["--calendar", "@reboot"], "is not a cron nickname"),
        (["--calendar", "$(touch x)"], "not a cron expression"),
        (["--calendar", "daily"], "schedule kept already exists"),
        (["--calendar", "daily", "--backend", "nope"], "no scheduler named 'nope' is installed"),
        (["--calendar", "daily", "-p", "inner.size=big"], "inner.size"),
    ]
    for extra, message in cases:
        name = [] if "--name" in extra else ["--name", "kept"]
        done = blut("schedule", "install", "testbook:diamond", *name, *extra,
                    *([] if "--calendar" in extra else ["--calendar", "daily"]),
                    home=blut_home, tmp=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (extra, done.stderr)
        assert len(lines) == 2 and lines[0].startswith("Error: ") and message in lines[0], (extra, lines)
        assert lines[1].startswith("Hint: "), (extra, lines)
    for argv, message in [(["schedule", "install", "testbook:nope", "--calendar", "daily"],
                           "unknown recipe"),
                          (["schedule", "remove", "nope"], "no schedule named 'nope'"),
                          (["schedule", "remove", "a;b"], "is not allowed"),
                          (["schedule", "fire", "nope"], "no schedule named 'nope'")]:
        done = blut(*argv, home=blut_home, tmp=tmp_path)
        assert done.returncode == 2 and message in done.stderr, (argv, done.stderr)
    assert current_crontab() == before, "a failed command changed the crontab"
    assert (blut_home / "schedules" / "kept.json").read_bytes() == definition
    assert sorted(p.name for p in (blut_home / "schedules").glob("*.json")) == [
        "kept.json", "kept.params.json"]
    assert not canary.exists()


@needs_crontab
@pytest.mark.slow
def test_a_firing_never_overlaps_the_previous_one(crontab: str, blut_home: Path, tmp_path: Path) -> None:
    assert blut("schedule", "install", "testbook:long", "--calendar", "hourly",
                home=blut_home, tmp=tmp_path).returncode == 0
    [line] = our_lines(current_crontab())
    assert line.startswith("@hourly ")
    first = as_cron_would(line)
    try:
        deadline = time.monotonic() + 60
        while not scheduled_runs(blut_home) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduled_runs(blut_home), "the first firing never started its run"
        second = as_cron_would(line)
        assert second.wait(timeout=60) == 0
        log = (blut_home / "schedules" / "testbook-long.log").read_text()
        skipped = [ln for ln in log.splitlines() if "schedule_skipped" in ln]
        assert len(skipped) == 1 and re.search(r"the previous firing \(pid \d+\) is still running",
                                               skipped[0]), log
        history = [json.loads(x) for x in
                   (blut_home / "schedules" / "testbook-long.history.jsonl").read_text().splitlines()]
        assert [h["event"] for h in history] == ["installed", "fired", "started", "skipped"]
        assert len(scheduled_runs(blut_home)) == 1, "the skipped firing started no run"
    finally:
        blut("cancel", "latest", home=blut_home, tmp=tmp_path)
        first.wait(timeout=60)
    assert first.returncode == 130


@needs_crontab
def test_a_recipe_declares_its_calendar(crontab: str, app, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        main(["schedule", "install", "schedbook:nightly"], app=app)
    assert exit_info.value.code == 0, capsys.readouterr().err
    [line] = our_lines(current_crontab())
    assert line.startswith("@daily ") and line.endswith("# blut-schedule:schedbook-nightly")
    with pytest.raises(SystemExit) as exit_info:
        main(["schedule", "install", "schedbook:bad-calendar"], app=app)
    assert exit_info.value.code == 2
    assert "calendar 'every full moon' is not a cron expression" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["schedule", "remove", "schedbook-nightly"], app=app)
    assert exit_info.value.code == 0
    assert current_crontab() == FOREIGN


# -- systemd ------------------------------------------------------------------------------


def _entry(tmp: Path, name: str = "nightly") -> Entry:
    odd = tmp / "a home with spaces, 100% \"quotes\" and $dollars"
    return Entry(name=name, recipe="testbook:diamond", calendar="Mon..Fri 02:00",
                 argv=(*[str(Path(blut_argv()[0]).resolve())], "schedule", "fire", name),
                 env={"BLUT_HOME": str(odd)}, log=odd / "schedules" / f"{name}.log")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian: apt-get install systemd)")
def test_systemd_units_pass_systemds_own_verifier(tmp_path: Path) -> None:
    units = render(_entry(tmp_path))
    assert sorted(units) == ["blut-schedule-nightly.service", "blut-schedule-nightly.timer"]
    for name, text in units.items():
        (tmp_path / name).write_text(text)
        assert text.startswith("# blut-schedule:nightly ")
    done = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           *(str(tmp_path / n) for n in units)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    service = units["blut-schedule-nightly.service"]
    assert 'Environment="BLUT_HOME=' in service and "100%% \\\"quotes\\\" and $$dollars" in service
    assert "OnCalendar=Mon..Fri 02:00" in units["blut-schedule-nightly.timer"]
    backend = SystemdTimers(tmp_path)
    for good in ("daily", "Mon..Fri 02:00", "*:0/15", "*-*-* 03:30:00"):
        assert backend.calendar(good)
    for bad, message in [("daily; rm -rf /", "never has"), ("daily\nExecStart=/bin/sh", "newline"),
                         ("*-*-* 25:00", "is not a systemd calendar"), ("$(id)", "never has")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            backend.calendar(bad)


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"),
                    reason="systemd runs here: the test would reload the real system manager")
@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_systemd_install_that_fails_leaves_the_unit_directory_as_it_was(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "backup.service").write_text("[Service]\nExecStart=/bin/true\n")
    (units / "blut-schedule-taken.timer").write_text("[Timer]\nOnCalendar=daily\n")
    before = {p.name: p.read_bytes() for p in units.iterdir()}
    backend = SystemdTimers(units, user=False)
    with pytest.raises(ConfigError, match=r"systemctl daemon-reload failed"):
        backend.install(_entry(tmp_path))
    with pytest.raises(ConfigError, match=r"blut-schedule-taken.timer exists and was not written by blut"):
        backend.install(_entry(tmp_path, "taken"))
    with pytest.raises(ConfigError, match=r"was not written by blut; not removing it"):
        backend.remove("taken")
    assert {p.name: p.read_bytes() for p in units.iterdir()} == before
    assert backend.installed() == {}


def test_the_systemd_backend_says_why_it_cannot_be_used(blut_home: Path, tmp_path: Path) -> None:
    if SystemdTimers().unusable_reason() is None:
        pytest.skip("systemd runs here")
    done = blut("schedule", "install", "testbook:diamond", "--calendar", "daily",
                "--backend", "systemd", home=blut_home, tmp=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("Error: schedule backend 'systemd' cannot be used here: ")
    assert not (blut_home / "schedules").exists() or not list((blut_home / "schedules").glob("*.json"))
