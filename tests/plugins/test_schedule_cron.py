"""A real cron daemon fires a blut schedule within a minute, and the run appears.

Uses the cron daemon that runs on this machine, or starts Debian's ``cron`` in the
foreground for the test (root only) and stops it after. The crontab is put back as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.plugins.test_schedule import (  # noqa: F401 - crontab is a fixture
    FOREIGN,
    blut,
    crontab,
    current_crontab,
    our_lines,
    scheduled_runs,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("crontab") is None or shutil.which("cron") is None,
                                 reason="cron is not installed (Debian: apt-get install cron)")]


def clear_of_cron_reads() -> None:
    """Wait until the clock is well away from a minute's start.

    cron reads its spool at each minute's start and, when the spool's mtime (whole seconds) is
    the one it read last, reads nothing: an edit made in the same second as that read is
    never seen. A crontab edited at second 3..56 of a minute is seen at the next one.
    """
    while not 3 <= time.localtime().tm_sec <= 56:
        time.sleep(0.2)


@pytest.fixture
def cron_daemon() -> Iterator[Callable[[], None]]:
    """Start a cron daemon, called once the crontab holds the lines under test.

    The machine's daemon when one runs (then starting is nothing), else Debian's ``cron -f``
    started by the call (root only) and stopped after. Started after the edit, a daemon
    reads the edited crontab when it starts, whatever second that is in.
    """
    running = subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0
    if running:
        yield lambda: None
        return
    if os.geteuid() != 0:
        pytest.skip("no cron daemon runs and only root can start one")
    daemons: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        daemon = subprocess.Popen([shutil.which("cron") or "cron", "-f"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        daemons.append(daemon)
        time.sleep(0.5)
        if daemon.poll() is not None:
            pytest.skip(f"cron -f would not start (exit code {daemon.returncode})")

    try:
        yield start
    finally:
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(timeout=30)


@pytest.mark.usefixtures("crontab")  # held first: the daemon must not fire another session's lines
def test_cron_fires_the_schedule_and_the_run_appears(cron_daemon: Callable[[], None],
                                                     blut_home: Path, tmp_path: Path) -> None:
    clear_of_cron_reads()
    done = blut("schedule", "install", "testbook:diamond", "--calendar", "minutely",
                "--name", "every-minute", home=blut_home, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    [line] = our_lines(current_crontab())
    assert line.startswith("* * * * * ")
    cron_daemon()
    deadline = time.monotonic() + 150  # the next minute, and cron's own minute to notice the edit
    runs: dict[str, str] = {}
    while time.monotonic() < deadline:
        runs = scheduled_runs(blut_home)
        finished = [r for r in runs if '"run_finished"' in
                    (blut_home / "runs" / r / "status.jsonl").read_text()]
        if finished:
            break
        time.sleep(1)
    assert runs, "cron did not fire the schedule: " + (
        (blut_home / "schedules" / "every-minute.log").read_text()
        if (blut_home / "schedules" / "every-minute.log").exists() else "no log")
    assert set(runs.values()) == {"every-minute"}
    assert blut("schedule", "remove", "every-minute", home=blut_home, tmp=tmp_path).returncode == 0
    listed = json.loads(blut("runs", "list", "--json", home=blut_home, tmp=tmp_path).stdout)
    assert set(runs) <= {r["run_id"] for r in listed}
    assert all(r["recipe"] == "testbook:diamond" for r in listed)
    assert current_crontab() == FOREIGN
