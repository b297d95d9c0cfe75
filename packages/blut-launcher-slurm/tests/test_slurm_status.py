"""Reading squeue and sacct: reports captured on the test cluster (tests/data), and edge cases.

The samples were written by ``capture_samples.py`` on the two-node cluster of
tools/cluster (Slurm 22.05.8, with accounting): one run whose jobs ended every way a job
ends there; ``jobs.txt`` says which job id ended how.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

pytest.importorskip("blut_launcher_slurm",
                    reason="not installed (pip install -e packages/blut-launcher-slurm)")

from blut_launcher_slurm.status import (
    QUERY_ENV,
    Cancelled,
    Completed,
    ExitCode,
    Failed,
    JobReport,
    Lost,
    OutOfMemory,
    Pending,
    Preempted,
    ReportError,
    Running,
    TimedOut,
    Unknown,
    combine,
    job_state,
    parse_rss,
    parse_sacct,
    parse_squeue,
    parse_time,
    sacct_argv,
    squeue_argv,
)

DATA = Path(__file__).parent / "data"
RUN = "blut.cap155723"


@pytest.fixture(scope="module")
def ids() -> dict[str, str]:
    pairs = (line.split("=") for line in (DATA / "jobs.txt").read_text().split())
    return {key: value for key, value in pairs}


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_one_query_each_covers_the_whole_run() -> None:
    since = datetime(2026, 1, 31, 23, 59, 58)
    assert squeue_argv(RUN) == ("squeue", "--noheader", "--states=all", f"--name={RUN}",
                                "--format=%i|%j|%T|%r|%S|%N")
    argv = sacct_argv(RUN, since)
    assert argv[:4] == ("sacct", "--parsable2", "--noheader", f"--name={RUN}")
    assert "--starttime=2026-01-31T23:59:58" in argv
    assert argv[-1] == "--format=JobID,JobName,State,ExitCode,Start,End,NodeList,MaxRSS,Reason"
    assert QUERY_ENV == {"SLURM_TIME_FORMAT": "standard"}


def test_captured_squeue_while_jobs_run(ids: dict[str, str]) -> None:
    reports = parse_squeue(read("squeue_running.txt"))
    assert ids["other_run"] not in reports  # the name filter kept the other run out
    assert all(r.name == RUN for r in reports.values())
    running = reports[ids["cancel_running"]]
    assert running.state == Running(datetime(2026, 12, 1, 15, 57, 24), "node2")
    assert running.start == datetime(2026, 12, 1, 15, 57, 24)
    assert not running.finished
    held = reports[ids["cancel_pending"]]
    assert held.state == Pending("JobHeldUser")
    assert held.start is None and held.nodes == ""  # squeue prints N/A for a pending job's start
    assert reports[ids["launch_fail"]].state == Pending("Resources")
    assert reports[ids["completed"]].state == Completed(None)  # squeue has no exit codes
    assert reports[ids["exit3"]].state == Failed(reason="NonZeroExitCode")
    assert reports[ids["oom"]].state == OutOfMemory()


def test_captured_squeue_once_all_ended(ids: dict[str, str]) -> None:
    reports = parse_squeue(read("squeue_done.txt"))
    assert all(r.finished for r in reports.values())
    assert reports[ids["node_fail"]].state == Lost("NODE_FAIL (NodeDown)")
    assert reports[ids["timeout"]].state == TimedOut()
    assert reports[ids["cancel_running"]].state == Cancelled(None)
    assert reports[ids["cancel_pending"]].state == Cancelled(None)
    # squeue says JobLaunchFailure both for a log that could not be opened and for a signal
    assert reports[ids["launch_fail"]].state == Failed(reason="JobLaunchFailure")
    assert reports[ids["signal9"]].state == Failed(reason="JobLaunchFailure")


def test_captured_sacct_once_all_ended(ids: dict[str, str]) -> None:
    reports = parse_sacct(read("sacct_done.txt"))
    assert set(reports) == set(ids.values()) - {ids["other_run"], ids["cancel_pending"]}
    assert reports[ids["completed"]].state == Completed(0)
    assert reports[ids["exit3"]].state == Failed(3, None, "")
    assert reports[ids["exit3"]].exit == ExitCode(3, 0)
    assert reports[ids["signal9"]].state == Failed(None, 9, "")
    oom = reports[ids["oom"]]
    assert oom.state == OutOfMemory() and oom.exit == ExitCode(0, 125)
    assert oom.max_rss == 0  # sampled: an OOM kill within a second leaves 0
    assert reports[ids["timeout"]].state == TimedOut()  # its batch step says CANCELLED 0:15
    cancelled = reports[ids["cancel_running"]]
    assert cancelled.state == Cancelled(0) and cancelled.slurm_state == "CANCELLED by 0"
    lost = reports[ids["node_fail"]]
    assert lost.state == Lost("NODE_FAIL") and lost.max_rss is None  # its batch step has no exit code
    assert reports[ids["launch_fail"]].state == Failed(None, 53, "")
    rss = reports[ids["rss"]]
    assert rss.max_rss == 212556 * 1024  # from the .batch step: 200 MiB held for 4 s
    assert rss.start == datetime(2026, 12, 1, 15, 57, 24) and rss.end == datetime(2026, 12, 1, 15, 57, 29)
    assert rss.nodes == "node1" and rss.name == RUN


def test_captured_sacct_while_jobs_run(ids: dict[str, str]) -> None:
    reports = parse_sacct(read("sacct_running.txt"))
    running = reports[ids["cancel_running"]]
    assert running.state == Running(datetime(2026, 12, 1, 15, 57, 24), "node2")
    assert running.end is None and running.exit is None  # End Unknown; "0:0" means nothing yet
    pending = reports[ids["launch_fail"]]
    assert pending.state == Pending("") and pending.start is None and pending.nodes == ""
    assert ids["cancel_pending"] not in reports  # never eligible: sacct does not list it


def test_combine_takes_finished_accounting_and_live_queue(ids: dict[str, str]) -> None:
    queue = parse_squeue(read("squeue_running.txt"))
    acct = parse_sacct(read("sacct_running.txt"))
    both = combine(queue, acct)
    assert set(both) == set(queue) | set(acct)
    assert both[ids["exit3"]].state == Failed(3, None, "")  # sacct's, with the exit code
    assert both[ids["cancel_pending"]].state == Pending("JobHeldUser")  # only squeue has it
    assert both[ids["launch_fail"]].state == Pending("Resources")  # live: squeue's reason
    done = combine(parse_squeue(read("squeue_done.txt")), parse_sacct(read("sacct_done.txt")))
    assert done[ids["cancel_pending"]].state == Cancelled(None)
    assert done[ids["signal9"]].state == Failed(None, 9, "")
    assert all(r.finished for r in done.values())


@pytest.mark.parametrize(("word", "state"), [
    ("PENDING", Pending("why")),
    ("REQUEUED", Pending("why")),
    ("CONFIGURING", Pending("why")),
    ("RUNNING", Running(None, "")),
    ("COMPLETING", Running(None, "")),
    ("SUSPENDED", Running(None, "")),
    ("COMPLETED", Completed(None)),
    ("CANCELLED", Cancelled(None)),
    ("CANCELLED by 1234", Cancelled(1234)),
    ("CANCELLED+", Cancelled(None)),
    ("TIMEOUT", TimedOut()),
    ("DEADLINE", TimedOut()),
    ("OUT_OF_MEMORY", OutOfMemory()),
    ("NODE_FAIL", Lost("NODE_FAIL (why)")),
    ("BOOT_FAIL", Lost("BOOT_FAIL (why)")),
    ("PREEMPTED", Preempted()),
    ("REVOKED", Unknown("REVOKED")),
    ("SOMETHING_NEW", Unknown("SOMETHING_NEW")),
])
def test_every_slurm_state_word(word: str, state: object) -> None:
    assert job_state(word, None, "why") == state


@pytest.mark.parametrize(("text", "state"), [
    ("1:0", Failed(1, None, "")),
    ("0:9", Failed(None, 9, "")),
    ("137:0", Failed(137, None, "")),
    ("2:15", Failed(2, 15, "")),
    ("0:0", Failed(0, None, "")),
])
def test_failed_exit_codes_are_code_and_signal(text: str, state: Failed) -> None:
    assert job_state("FAILED", ExitCode.parse(text)) == state


def test_exit_code_parsing() -> None:
    assert ExitCode.parse("0:125") == ExitCode(0, 125)
    assert ExitCode.parse("3") == ExitCode(3, 0)
    assert ExitCode.parse("") is None
    with pytest.raises(ReportError, match="CODE:SIGNAL"):
        ExitCode.parse("x:y")


@pytest.mark.parametrize(("text", "value"), [
    ("", None), ("0", 0), ("212624K", 212624 * 1024), ("1.50G", 3 << 29), ("512M", 512 << 20),
    ("2T", 2 << 40), ("123", 123), ("  7K ", 7 << 10),
])
def test_max_rss_units(text: str, value: int | None) -> None:
    assert parse_rss(text) == value


def test_bad_max_rss() -> None:
    with pytest.raises(ReportError, match="MaxRSS '12Q'"):
        parse_rss("12Q")


@pytest.mark.parametrize("text", ["Unknown", "None", "N/A", "", " ", "(null)"])
def test_times_that_are_not_set(text: str) -> None:
    assert parse_time(text) is None


def test_times_in_another_format_are_an_error() -> None:
    assert parse_time("2026-12-01T15:57:24") == datetime(2026, 12, 1, 15, 57, 24)
    with pytest.raises(ReportError, match="SLURM_TIME_FORMAT"):
        parse_time("12/01-15:57:24")


def test_sacct_without_the_jobs_own_line_uses_its_batch_step() -> None:
    text = ("42.batch|batch|COMPLETED|0:0|2026-01-01T00:00:00|2026-01-01T00:00:05|node1|2G|\n"
            "42.extern|extern|COMPLETED|0:0|2026-01-01T00:00:00|2026-01-01T00:00:05|node1|1K|\n")
    report = parse_sacct(text)["42"]
    assert report.state == Completed(0) and report.max_rss == 2 << 30 and report.name == "batch"


def test_sacct_max_rss_is_the_largest_of_the_steps() -> None:
    text = ("7|blut.r|COMPLETED|0:0|2026-01-01T00:00:00|2026-01-01T00:00:09|node[1-2]||None\n"
            "7.batch|batch|COMPLETED|0:0|2026-01-01T00:00:00|2026-01-01T00:00:09|node1|10M|\n"
            "7.extern|extern|COMPLETED|0:0|2026-01-01T00:00:00|2026-01-01T00:00:09|node1|1K|\n"
            "7.0|python3|COMPLETED|0:0|2026-01-01T00:00:01|2026-01-01T00:00:08|node2|1.5G|\n")
    report = parse_sacct(text)["7"]
    assert report.max_rss == 3 << 29 and report.nodes == "node[1-2]"


def test_preempted_and_requeued_lines() -> None:
    text = ("9|blut.r|PREEMPTED|0:15|2026-01-01T00:00:00|2026-01-01T00:01:00|node1||None\n"
            "10|blut.r|REQUEUED|0:0|Unknown|Unknown|None assigned||BeginTime\n")
    reports = parse_sacct(text)
    assert reports["9"].state == Preempted() and reports["9"].finished
    assert reports["10"].state == Pending("BeginTime") and not reports["10"].finished


def test_short_lines_are_an_error_that_quotes_them() -> None:
    with pytest.raises(ReportError, match=r"squeue line has 3 of 6 fields: '1\|a\|RUNNING'"):
        parse_squeue("1|a|RUNNING\n")
    with pytest.raises(ReportError, match="sacct line"):
        parse_sacct("1|a|RUNNING|0:0\n")


def test_blank_lines_and_empty_reports() -> None:
    assert parse_squeue("") == {} and parse_sacct("\n\n") == {}
    assert combine({}, {}) == {}


def test_a_report_is_a_frozen_record() -> None:
    report = JobReport(job_id="1", name=RUN, state=Completed(0), slurm_state="COMPLETED")
    with pytest.raises(AttributeError):
        report.job_id = "2"  # type: ignore[misc]
    assert report.finished
