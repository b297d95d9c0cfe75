"""The Slurm launcher: each stage attempt one batch job, its ``--mem`` the kernel cap.

A job runs ``python -m blut_core.process.shim RECORD -- ARGV``: the shim runs the stage in
the job's cgroup (Slurm's, from ``--mem``) and writes the attempt's exit record last. An
attempt is finished only when that record is visible here; a job Slurm reports ended
(``NODE_FAIL`` at once, anything else after ``lost_job_grace``) without one is lost.

Polling is batched: one ``squeue`` for every job of the run (they share one job name) per
``poll`` round, however many attempts are followed (:meth:`SlurmLauncher.poll_many`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from blut_core import Job, JobHandle, JobState, JobStatus, Launcher, LauncherError
from blut_core.model import Capacity, NodeCapacity, PeakSource
from blut_launcher_slurm import status as st
from blut_launcher_slurm.script import BatchJob, job_name_for, render_script, sbatch_argv, sbatch_environment
from blut_launcher_slurm.settings import SlurmSettings

RECORD = "exit.json"
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: how long a fresh squeue report serves polls of the same round
_FRESH = 0.25


def run_tag_for(job: Job) -> str:
    """The job's run tag (``Job.run_tag``, else its run id), as Slurm can name it."""
    tag = _TAG_BAD.sub("-", job.run_tag or job.run_id).strip("-.") or "run"
    return tag[:64]


def record_path(job_dir: str) -> str:
    return os.path.join(job_dir, RECORD)


def _query(argv: Sequence[str]) -> str:
    env = {**os.environ, **st.QUERY_ENV}
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LauncherError(f"slurm: {argv[0]} failed: {exc}",
                            hint="is Slurm's client installed and SLURM_CONF set?") from None
    if done.returncode != 0:
        raise LauncherError(f"slurm: {' '.join(argv[:2])} failed: {done.stderr.strip()[:300]}",
                            hint="is slurmctld reachable (scontrol ping)?")
    return done.stdout


class SlurmLauncher(Launcher):
    """Submits attempts with sbatch and follows a run's jobs with one squeue per round."""

    name = "slurm"

    def __init__(self, options: SlurmSettings | None = None, containment: Any = None) -> None:
        self.settings = options or SlurmSettings()
        self._dirs: dict[str, str] = {}          # job id -> attempt directory
        self._names: dict[str, str] = {}         # job id -> job name (one per run)
        self._ended_seen: dict[str, float] = {}  # job id -> when Slurm first said it ended
        self._reports: dict[str, st.JobReport] = {}
        self._asked = 0.0
        self._done: dict[str, JobState] = {}
        self._checked_fs = False
        self.queries = 0  # squeue calls (tests and benchmarks count them)

    # -- submitting ----------------------------------------------------------------------

    def submit(self, job: Job) -> JobHandle:
        for path in job.dirs:
            os.makedirs(path, exist_ok=True)
        job_dir = os.path.dirname(job.stdout)
        tag = run_tag_for(job)
        env = {k: v for k, v in job.env.items() if _ENV_NAME.match(k) and "\0" not in v}
        argv = (sys.executable, "-m", "blut_core.process.shim", record_path(job_dir), "--", *job.argv)
        try:
            batch = BatchJob(job_name=job_name_for(tag), run_tag=tag, argv=argv, workdir=job.cwd,
                             stdout=job.stdout, stderr=job.stderr, env=env,
                             memory_cap=job.memory_cap, cpus=max(1, math.ceil(job.cpus)),
                             hard_timeout=job.time_limit)
        except ValueError as exc:
            raise LauncherError(f"stage {job.stage!r}: cannot be a Slurm job: {exc}",
                                hint="see docs/distributed.md") from None
        script = os.path.join(job_dir, "job.sbatch")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(render_script(batch))
        cmd = sbatch_argv(batch, self.settings, script)
        try:
            done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60,
                                  env=sbatch_environment(os.environ))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LauncherError(f"stage {job.stage!r}: sbatch failed: {exc}",
                                hint="is Slurm's client installed and SLURM_CONF set?") from None
        if done.returncode != 0:
            raise LauncherError(f"stage {job.stage!r}: sbatch refused the job: "
                                f"{done.stderr.strip()[:300]}",
                                hint="check [launcher.slurm] partition/account/qos and the cap")
        job_id = done.stdout.strip().split(";")[0]
        self._dirs[job_id] = job_dir
        self._names[job_id] = batch.job_name
        return JobHandle(launcher=self.name, job_id=job_id)

    # -- following -----------------------------------------------------------------------

    def _refresh(self, names: set[str]) -> None:
        reports: dict[str, st.JobReport] = {}
        for name in sorted(names):
            self.queries += 1
            reports.update(st.parse_squeue(_query(st.squeue_argv(name))))
        self._reports = reports
        self._asked = time.monotonic()

    def poll_many(self, handles: Sequence[JobHandle]) -> dict[str, JobState]:
        live = [h for h in handles if h.job_id not in self._done]
        need = {self._names[h.job_id] for h in live if h.job_id in self._names}
        if need and time.monotonic() - self._asked > _FRESH:
            self._refresh(need)
        return {h.job_id: self._state(h) for h in handles}

    def poll(self, handle: JobHandle) -> JobState:
        if handle.job_id in self._done:
            return self._done[handle.job_id]
        live = [JobHandle(launcher=self.name, job_id=j) for j in self._dirs if j not in self._done]
        return self.poll_many(live or [handle])[handle.job_id]

    def _state(self, handle: JobHandle) -> JobState:
        job_id = handle.job_id
        if job_id in self._done:
            return self._done[job_id]
        rep = self._reports.get(job_id)
        job_dir = self._dirs.get(job_id)
        record = None if job_dir is None else _read(record_path(job_dir))
        if record is not None:
            return self._settle(job_id, from_record(record, rep))
        if rep is None or not rep.finished:
            if rep is not None and isinstance(rep.state, st.Running):
                return JobState(status=JobStatus.RUNNING, node=rep.nodes,
                                started_at=_epoch(rep.state.start))
            detail = rep.state.reason if rep is not None and isinstance(rep.state, st.Pending) else ""
            return JobState(status=JobStatus.PENDING, detail=detail)
        first = self._ended_seen.setdefault(job_id, time.monotonic())
        if isinstance(rep.state, st.Lost):
            return self._settle(job_id, JobState(status=JobStatus.LOST, node=rep.nodes,
                                                 detail=f"slurm: {rep.slurm_state} ({rep.state.reason})"))
        if isinstance(rep.state, st.OutOfMemory):  # killed with its shim, before the record
            return self._settle(job_id, JobState(status=JobStatus.EXITED, returncode=None,
                                                 signal=9, oom_killed=True, node=rep.nodes,
                                                 detail="slurm: OUT_OF_MEMORY"))
        if isinstance(rep.state, st.Cancelled | st.TimedOut) or \
                time.monotonic() - first >= min(self.settings.lost_job_grace, 30.0):
            where = record_path(job_dir or "?")
            return self._settle(job_id, JobState(
                status=JobStatus.LOST, node=rep.nodes,
                detail=f"slurm: job {job_id} ended {rep.slurm_state} without its exit record {where}: "
                       "can the compute node see the run directory? (see its stderr log)"))
        return JobState(status=JobStatus.RUNNING, node=rep.nodes)

    def _settle(self, job_id: str, state: JobState) -> JobState:
        self._done[job_id] = state
        return state

    def wait(self, handles: Sequence[JobHandle], timeout: float) -> None:
        """Sleep until an exit record appears (a stat per job every 20 ms) or ``timeout``."""
        end = time.monotonic() + min(timeout, self.settings.poll_interval)
        paths = [record_path(self._dirs[h.job_id]) for h in handles if h.job_id in self._dirs]
        while time.monotonic() < end:
            if any(os.path.exists(p) for p in paths):
                return
            time.sleep(0.02)

    # -- stopping ------------------------------------------------------------------------

    def cancel(self, handle: JobHandle) -> None:
        if not handle.job_id:
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["scancel", "--full", "--signal=KILL", handle.job_id], capture_output=True,
                           timeout=30)
            subprocess.run(["scancel", handle.job_id], capture_output=True, timeout=30)

    def signal(self, handle: JobHandle, signum: int) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["scancel", "--batch", f"--signal={signum}", handle.job_id],
                           capture_output=True, timeout=30)

    def find_jobs(self, run_tag: str) -> list[JobHandle]:
        tag = _TAG_BAD.sub("-", run_tag).strip("-.")[:64]
        reports = st.parse_squeue(_query(st.squeue_argv(job_name_for(tag))))
        return [JobHandle(launcher=self.name, job_id=r.job_id) for r in reports.values() if not r.finished]

    def capacity(self) -> Capacity:
        return capacity_of(_query(("sinfo", "--noheader", "--Node", "--format=%N|%m|%c|%t")),
                           self.settings.partition)

    def close(self) -> None:
        for job_id in list(self._dirs):
            if job_id not in self._done:
                self.cancel(JobHandle(launcher=self.name, job_id=job_id))


def capacity_of(sinfo: str, partition: str | None = None) -> Capacity:
    """The cluster's capacity from ``sinfo -N -o %N|%m|%c|%t``: nodes up, memory in MiB."""
    nodes: dict[str, NodeCapacity] = {}
    for line in sinfo.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or parts[3].rstrip("*~#!%$@^-") in ("down", "drain", "drng", "fail"):
            continue
        try:
            nodes[parts[0]] = NodeCapacity(name=parts[0], memory_bytes=int(parts[1]) << 20,
                                           cpus=float(parts[2]))
        except ValueError:
            continue
    if not nodes:
        raise LauncherError("slurm: no node is up" + (f" in partition {partition}" if partition else ""),
                            hint="sinfo -N shows the nodes and their states")
    found = tuple(nodes.values())
    return Capacity(nodes=found, max_job_memory=max(n.memory_bytes for n in found),
                    max_job_cpus=max(n.cpus for n in found), max_jobs=10_000)


def _read(path: str) -> dict[str, Any] | None:
    from blut_core.process import read_record

    return read_record(path)


def _epoch(when: Any) -> float | None:
    return None if when is None else float(when.timestamp())


def from_record(record: Mapping[str, Any], report: st.JobReport | None = None) -> JobState:
    """The attempt's final state from its shim's exit record (and Slurm's word on OOM)."""
    oom = int(record.get("oom_kills") or 0) > 0 or (report is not None and
                                                   isinstance(report.state, st.OutOfMemory))
    rc = record.get("returncode")
    sig = record.get("signal")
    peak = record.get("peak_bytes")
    return JobState(status=JobStatus.EXITED, returncode=rc if isinstance(rc, int) else None,
                    signal=sig if isinstance(sig, int) else None,
                    peak_bytes=peak if isinstance(peak, int) else None, oom_killed=oom,
                    peak_source=PeakSource.KERNEL, node=str(record.get("node") or ""),
                    started_at=record.get("started_at"), detail=str(record.get("error") or ""))
