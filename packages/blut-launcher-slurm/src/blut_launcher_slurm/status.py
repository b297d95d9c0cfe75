"""What Slurm says about a run's jobs: the squeue and sacct queries, and their reports read.

Every job of a run has the run's one job name (:func:`~blut_launcher_slurm.script.job_name_for`),
so ONE query covers all of them: :func:`squeue_argv` (live jobs, and for ``MinJobAge``
seconds the finished ones, without exit codes) and :func:`sacct_argv` (every job since a
time, finished ones with exit code and peak RSS; needs accounting, i.e. slurmdbd). Run both
with :data:`QUERY_ENV` over the environment, so that a user's ``SLURM_TIME_FORMAT`` cannot
change how times are printed.

:func:`parse_squeue` and :func:`parse_sacct` turn their output into :class:`JobReport`\\ s,
one per job, whose ``state`` is one of the typed states below. sacct prints a line for the
job and one per step (``.batch``, ``.extern``, ``.0``); they are folded into one report:
state and exit code from the job's line, MaxRSS the largest of its steps'.

What the test cluster (Slurm 22.05) reports, kept in tests/data: squeue has no exit codes,
and says FAILED/JobLaunchFailure both for a job whose log could not be opened and for one
whose batch script was killed by a signal; sacct has them (``0:9``, ``0:53``), but misses a
job that was never eligible (held, then cancelled), so a run needs both (:func:`combine`).
MaxRSS is sampled (once a second there): a short job shows ``0``, an OOM-killed one too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

import attrs

#: squeue's fields: job id, name, state, reason, start time, nodes
SQUEUE_FORMAT = "%i|%j|%T|%r|%S|%N"
SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Start", "End", "NodeList", "MaxRSS", "Reason")
#: environment for the queries (over the caller's): times as ``2026-01-31T23:59:59``
QUERY_ENV: Mapping[str, str] = {"SLURM_TIME_FORMAT": "standard"}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
_NO_TIME = frozenset({"", "Unknown", "None", "N/A", "(null)"})
_RSS = re.compile(r"(\d+(?:\.\d+)?)([KMGTPE]?)\Z")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
_CANCELLED_BY = re.compile(r"CANCELLED by (\d+)\Z")


class ReportError(ValueError):
    """A report line that cannot be read; the message quotes it."""


def squeue_argv(job_name: str) -> tuple[str, ...]:
    """squeue for every job named ``job_name``: live ones, and recently finished ones."""
    return ("squeue", "--noheader", "--states=all", f"--name={job_name}", f"--format={SQUEUE_FORMAT}")


def sacct_argv(job_name: str, since: datetime) -> tuple[str, ...]:
    """sacct for every job named ``job_name`` that was pending or running after ``since``.

    ``since`` matters: sacct's default window starts at midnight, so a run that crosses
    midnight would lose its earlier jobs. Give the run's start (minus a little).
    """
    return ("sacct", "--parsable2", "--noheader", f"--name={job_name}",
            f"--starttime={since.strftime(_TIME_FORMAT)}", f"--format={','.join(SACCT_FIELDS)}")


# ---- states ---------------------------------------------------------------------------------


@attrs.frozen
class Pending:
    """Waiting to start; ``reason`` is Slurm's (``Resources``, ``Priority``, ``JobHeldUser``...)."""

    reason: str = ""


@attrs.frozen
class Running:
    """Started at ``start`` (the cluster's local time) on ``nodes``; also while completing."""

    start: datetime | None
    nodes: str = ""


@attrs.frozen
class Completed:
    """Ended with exit code 0. ``exit_code`` is ``None`` when the report had none (squeue)."""

    exit_code: int | None = 0


@attrs.frozen
class Failed:
    """Ended with a non-zero exit code, or killed by ``signal``; ``None`` where not reported.

    ``reason`` is Slurm's, e.g. ``NonZeroExitCode``, or ``JobLaunchFailure`` when the node
    could not start it (its log file could not be opened, say).
    """

    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""


@attrs.frozen
class Cancelled:
    """Cancelled (scancel), by the user id ``by_uid`` when Slurm says."""

    by_uid: int | None = None


@attrs.frozen
class TimedOut:
    """Killed at its time limit (``--time``), or at its deadline."""


@attrs.frozen
class OutOfMemory:
    """Killed by the kernel for exceeding its cgroup's memory cap (``--mem``)."""


@attrs.frozen
class Lost:
    """The job's node failed (``NODE_FAIL``) or never booted (``BOOT_FAIL``): not its fault."""

    reason: str


@attrs.frozen
class Preempted:
    """Stopped to make room for another job."""


@attrs.frozen
class Unknown:
    """A state this module does not know; ``state`` is Slurm's word for it."""

    state: str


JobState = (Pending | Running | Completed | Failed | Cancelled | TimedOut | OutOfMemory | Lost | Preempted
            | Unknown)
FINISHED = (Completed, Failed, Cancelled, TimedOut, OutOfMemory, Lost, Preempted)


@attrs.frozen
class ExitCode:
    """sacct's ``code:signal``: the exit code, and the signal that ended the process (0: none)."""

    code: int
    signal: int

    @classmethod
    def parse(cls, text: str) -> ExitCode | None:
        if not text:
            return None
        code, sep, signal = text.partition(":")
        try:
            return cls(int(code), int(signal) if sep else 0)
        except ValueError:
            raise ReportError(f"exit code {text!r} is not CODE:SIGNAL") from None


@attrs.frozen(kw_only=True)
class JobReport:
    """One job as one report saw it. ``slurm_state`` is Slurm's word (``CANCELLED by 0``)."""

    job_id: str
    name: str
    state: JobState
    slurm_state: str
    exit: ExitCode | None = None
    start: datetime | None = None
    end: datetime | None = None
    nodes: str = ""
    max_rss: int | None = None
    reason: str = ""

    @property
    def finished(self) -> bool:
        return isinstance(self.state, FINISHED)


# ---- fields ---------------------------------------------------------------------------------


def parse_time(text: str) -> datetime | None:
    """A Slurm time (``2026-01-31T23:59:59``), or ``None`` for Unknown/None/N/A/empty."""
    text = text.strip()
    if text in _NO_TIME:
        return None
    try:
        return datetime.strptime(text, _TIME_FORMAT)
    except ValueError:
        raise ReportError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS (was SLURM_TIME_FORMAT set?)") from None


def parse_rss(text: str) -> int | None:
    """sacct's MaxRSS in bytes (``212624K``, ``1.50G``, ``0``; units of 1024), ``None`` if empty."""
    text = text.strip()
    if not text:
        return None
    match = _RSS.match(text)
    if not match:
        raise ReportError(f"MaxRSS {text!r} is not a number with a K/M/G/T/P/E unit")
    number, unit = match.groups()
    return round(float(number) * _UNITS[unit])


def job_state(slurm_state: str, exit: ExitCode | None = None, reason: str = "", *,
              start: datetime | None = None, nodes: str = "") -> JobState:
    """The typed state for Slurm's ``slurm_state`` (squeue %T or sacct State)."""
    word = slurm_state.strip().rstrip("+")
    base = word.split(" ", 1)[0]
    if base in ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                "SPECIAL_EXIT"):
        return Pending(reason)
    if base in ("RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"):
        return Running(start, nodes)
    if base == "COMPLETED":
        return Completed(exit.code if exit is not None else None)
    if base == "FAILED":
        if exit is None:
            return Failed(reason=reason)
        return Failed(exit.code if exit.code or not exit.signal else None, exit.signal or None, reason)
    if base == "CANCELLED":
        by = _CANCELLED_BY.match(word)
        return Cancelled(int(by.group(1)) if by else None)
    if base in ("TIMEOUT", "DEADLINE"):
        return TimedOut()
    if base == "OUT_OF_MEMORY":
        return OutOfMemory()
    if base in ("NODE_FAIL", "BOOT_FAIL"):
        return Lost(f"{base}{f' ({reason})' if reason and reason != 'None' else ''}")
    if base == "PREEMPTED":
        return Preempted()
    return Unknown(word)


def _reason(text: str) -> str:
    text = text.strip()
    return "" if text in ("None", "(null)") else text


def _nodes(text: str) -> str:
    text = text.strip()
    return "" if text in ("None assigned", "(null)") else text


def _fields(line: str, count: int, what: str) -> list[str]:
    fields = line.split("|")
    if len(fields) < count:
        raise ReportError(f"{what} line has {len(fields)} of {count} fields: {line!r}")
    # a name with '|' in it would shift the rest: names are plain (see script.py), so join back
    if len(fields) > count:
        extra = len(fields) - count
        fields = [fields[0], "|".join(fields[1:2 + extra]), *fields[2 + extra:]]
    return fields


# ---- reports --------------------------------------------------------------------------------


def parse_squeue(text: str) -> dict[str, JobReport]:
    """Reports from ``squeue --format=SQUEUE_FORMAT`` output, by job id."""
    reports: dict[str, JobReport] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        job_id, name, slurm_state, reason, start_text, nodes = _fields(line, 6, "squeue")
        start = parse_time(start_text)
        reason = _reason(reason)
        nodes = _nodes(nodes)
        state = job_state(slurm_state, None, reason, start=start, nodes=nodes)
        started = None if isinstance(state, Pending) else start  # a pending job's start is a guess
        reports[job_id.strip()] = JobReport(job_id=job_id.strip(), name=name, state=state,
                                            slurm_state=slurm_state.strip(), start=started,
                                            nodes=nodes, reason=reason)
    return reports


def parse_sacct(text: str) -> dict[str, JobReport]:
    """Reports from ``sacct --parsable2 --format=SACCT_FIELDS`` output, by job id (steps folded in)."""
    jobs: dict[str, list[str]] = {}
    steps: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = _fields(line, len(SACCT_FIELDS), "sacct")
        job_id, _, step = fields[0].strip().partition(".")
        if step:
            steps.setdefault(job_id, []).append(fields)
        else:
            jobs[job_id] = fields
    reports: dict[str, JobReport] = {}
    for job_id in {**jobs, **steps}:
        own = jobs.get(job_id)
        job_steps = steps.get(job_id, [])
        if own is None:  # no line of the job itself: take its batch step's
            batch = [s for s in job_steps if s[0].endswith(".batch")] or job_steps
            own = batch[0]
        _, name, slurm_state, exit_text, start_text, end_text, nodes, _, reason = own
        exit = ExitCode.parse(exit_text.strip())
        start = parse_time(start_text)
        reason = _reason(reason)
        rss = [r for r in (parse_rss(s[7]) for s in [own, *job_steps]) if r is not None]
        nodes = _nodes(nodes)
        state = job_state(slurm_state, exit, reason, start=start, nodes=nodes)
        reports[job_id] = JobReport(
            job_id=job_id, name=name, state=state, slurm_state=slurm_state.strip(),
            exit=exit if isinstance(state, FINISHED) else None,  # sacct says 0:0 while it runs
            start=None if isinstance(state, Pending) else start, end=parse_time(end_text),
            nodes=nodes, max_rss=max(rss) if rss else None, reason=reason,
        )
    return reports


def combine(queue: Mapping[str, JobReport], accounting: Mapping[str, JobReport]) -> dict[str, JobReport]:
    """One report per job from both: sacct's once it has the job finished (exit code, MaxRSS),
    else squeue's (the controller's own, most current view), else whichever has the job."""
    combined: dict[str, JobReport] = {}
    for job_id in _ordered(queue, accounting):
        acct = accounting.get(job_id)
        live = queue.get(job_id)
        if acct is not None and (acct.finished or live is None):
            combined[job_id] = acct
        elif live is not None:
            combined[job_id] = live
    return combined


def _ordered(*maps: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for m in maps:
        for key in m:
            seen.setdefault(key, None)
    return list(seen)
