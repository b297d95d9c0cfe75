"""The ``local`` launcher: each stage attempt is a subprocess on this machine.

Entry point ``launcher-local`` (essential). Every attempt runs in its own session (so a
cancel reaches its whole process group) and, when containment is available, in its own
memory cage. The executor is woken by the kernel through pidfds, never by busy polling.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from blut_core import (
    Cage,
    Containment,
    Job,
    JobHandle,
    JobState,
    JobStatus,
    Launcher,
    LauncherError,
    LauncherSpec,
    hookimpl,
)


@attrs.define
class _Proc:
    popen: subprocess.Popen[bytes]
    cage: Cage | None
    pidfd: int | None
    state: JobState | None = None


class LocalLauncher(Launcher):
    """Runs attempts as contained subprocesses here."""

    name = "local"

    def __init__(self, options: Any = None, containment: Containment | None = None) -> None:
        self._containment = containment
        self._procs: dict[str, _Proc] = {}

    def submit(self, job: Job) -> JobHandle:
        cage = self._containment.cage(job.label or job.stage, job.memory_cap) \
            if self._containment else None
        argv: Sequence[str] = job.argv
        preexec = None
        if cage is not None:
            argv, preexec = cage.wrap(job.argv)
        try:
            with open(job.stdout, "wb") as out, open(job.stderr, "wb") as err:
                popen = subprocess.Popen(
                    list(argv), cwd=job.cwd, env=dict(job.env), stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True, close_fds=True,
                    preexec_fn=preexec,
                )
        except OSError as exc:
            if cage is not None:
                cage.release()
            raise LauncherError(f"stage {job.stage!r}: cannot start {argv[0]!r}: {exc.strerror}",
                                hint="check the command exists and is executable") from None
        if cage is not None:
            cage.attach(popen.pid)
        try:
            pidfd: int | None = os.pidfd_open(popen.pid)
        except (OSError, AttributeError):
            pidfd = None
        job_id = str(popen.pid)
        self._procs[job_id] = _Proc(popen=popen, cage=cage, pidfd=pidfd)
        return JobHandle(launcher=self.name, job_id=job_id, pid=popen.pid)

    def poll(self, handle: JobHandle) -> JobState:
        proc = self._procs.get(handle.job_id)
        if proc is None:
            return JobState(status=JobStatus.EXITED, returncode=None, detail="unknown job")
        if proc.state is not None:
            return proc.state
        rc = proc.popen.poll()
        if rc is None:
            return JobState(status=JobStatus.RUNNING)
        return self._reap(proc, rc)

    def _reap(self, proc: _Proc, rc: int) -> JobState:
        # A stage's own children may outlive it; they belong to the attempt: end them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        peak = oom = None
        if proc.cage is not None:
            proc.cage.kill()
            peak, oom = proc.cage.peak_bytes(), proc.cage.oom_killed()
            proc.cage.release()
        if proc.pidfd is not None:
            os.close(proc.pidfd)
            proc.pidfd = None
        proc.state = JobState(status=JobStatus.EXITED, returncode=rc,
                              signal=-rc if rc < 0 else None, peak_bytes=peak,
                              oom_killed=bool(oom))
        return proc.state

    def signal(self, handle: JobHandle, signum: int) -> None:
        proc = self._procs.get(handle.job_id)
        if proc is not None and proc.state is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signum)

    def cancel(self, handle: JobHandle) -> None:
        proc = self._procs.get(handle.job_id)
        if proc is None or proc.state is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        if proc.cage is not None:
            proc.cage.kill()
        rc = proc.popen.wait()
        self._reap(proc, rc)

    def wait(self, handles: Sequence[JobHandle], timeout: float) -> None:
        fds = [p.pidfd for h in handles if (p := self._procs.get(h.job_id)) and p.pidfd is not None]
        if not fds or len(fds) < len(handles):
            super().wait(handles, timeout)
            return
        with contextlib.suppress(InterruptedError):
            select.select(fds, [], [], max(0.0, timeout))

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.state is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                self._reap(proc, proc.popen.wait())
        self._procs.clear()


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    yield LauncherSpec(name="local", summary="Run stages as contained subprocesses on this machine.",
                       factory=LocalLauncher)
