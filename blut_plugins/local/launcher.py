"""Implementation behind the ``launcher-local`` plugin (imported only when used).

The ``local`` launcher: each stage attempt is a process on this machine.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
)
from blut_core.model import record_repr
from blut_plugins.local.request import prepare_job

if TYPE_CHECKING:
    from blut_plugins.local.forkclient import ForkClient


def _join_spec(cage: Cage) -> Mapping[str, Any] | None:
    """How a worker puts itself under ``cage``: where the cage says how a worker makes it too
    (a cgroup's ``make_spec``), that, so the driver does not make it (a ``mkdir`` and its
    limits) on its own path; the cage still makes itself if the stage is started here
    instead (``wrap``, ``adopt``)."""
    make = getattr(cage, "make_spec", None)
    return cage.join_spec() if make is None else make()


@attrs.define
class _Proc:
    __repr__ = record_repr  # attrs' text, not compiled per class

    pid: int
    popen: subprocess.Popen[bytes] | None
    cage: Cage | None
    pidfd: int | None
    state: JobState | None = None
    request: int | None = None  # fork server request id (Python stages run by a worker)


class LocalLauncher(Launcher):
    """Runs attempts as contained processes here."""

    name = "local"
    writes_files = True  # in the stage's worker, or just before spawning it
    #: a run of fewer command stages (and no Python stage) starts them all with ``subprocess``:
    #: a fork server costs a Python process's start-up, which only many stages win back
    #: (20 ``true`` stages: 21 % less CPU and 12 % less wall without one; 200: 37 % less CPU
    #: with one)
    FORK_SERVER_MIN_COMMANDS = 32

    def __init__(self, options: Any = None, containment: Containment | None = None) -> None:
        self._containment = containment
        self._procs: dict[str, _Proc] = {}
        self._forks: ForkClient | None = None
        self._use_forks = os.environ.get("BLUT_FORKSERVER", "1") != "0"
        self._reuse = os.environ.get("BLUT_REUSE_WORKERS", "1") != "0"
        self._fork_driver = os.environ.get("BLUT_FORKSERVER_FORK", "1") != "0"
        self._commands: int | None = None  # the run's command stages (None: not told)

    def expect(self, commands: int) -> None:
        self._commands = commands

    def prepare(self, env: Mapping[str, str], python_modules: Sequence[str]) -> None:
        """Start the fork server now, importing the run's stage modules while the run starts.

        Runs of command stages only need it where workers are reused (see
        :meth:`_idle_worker`), and only when they are many (:attr:`FORK_SERVER_MIN_COMMANDS`).
        """
        reusable = self._reuse and self._containment is not None and \
            self._containment.kernel_evidence and \
            (self._commands is None or self._commands >= self.FORK_SERVER_MIN_COMMANDS)
        if self._use_forks and (python_modules or reusable):
            self._server(env, python_modules)

    def _server(self, env: Mapping[str, str], modules: Sequence[str] = ()) -> ForkClient:
        """The run's fork server, started on first use."""
        if self._forks is None:
            from blut_plugins.local.forkclient import ForkClient

            self._forks = ForkClient(dict(env), modules, fork=self._fork_driver)
        return self._forks

    def submit(self, job: Job) -> JobHandle:
        cage = self._containment.cage(job.label or job.stage, job.memory_cap) \
            if self._containment else None
        try:
            join = {} if cage is None else _join_spec(cage)
            reuse = self._reuse and bool(join and join.get("home_procs"))
            if self._use_forks and (job.python_context or (reuse and self._idle_worker())):
                forked = self._submit_forked(job, cage, join, reuse)
                if forked is not None:
                    return forked
            return self._submit_spawned(job, cage)
        except BaseException:
            if cage is not None:
                cage.release()
            raise

    def _idle_worker(self) -> bool:
        """Whether a worker is idle now, to start a command stage (never waits for one).

        Commands go to workers only where workers are reused (a cgroup they can leave): a
        worker spawns the command without copying itself (``posix_spawn``) and is ready for
        the next stage, so the driver pays one message instead of a fork. The first command
        stages of a run, while the server is not up yet, start with ``subprocess``.
        """
        if self._forks is None:
            return False
        if not self._forks.spares:
            self._forks.drain()
        return bool(self._forks.spares)

    def _submit_spawned(self, job: Job, cage: Cage | None) -> JobHandle:
        try:
            prepare_job(job.dirs, job.files)
        except OSError as exc:  # the stage fails; the executor tells a full disk apart
            raise LauncherError(f"stage {job.stage!r}: cannot prepare {exc.filename or job.cwd}: "
                                f"{exc.strerror}", hint="check the run directory's disk") from None
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
            raise LauncherError(f"stage {job.stage!r}: cannot start {argv[0]!r}: {exc.strerror}",
                                hint="check the command exists and is executable") from None
        if cage is not None:
            cage.attach(popen.pid)
        return self._track(popen.pid, popen, cage)

    def _submit_forked(self, job: Job, cage: Cage | None, join: Mapping[str, Any] | None,
                       reuse: bool) -> JobHandle | None:
        """Run the stage in a worker of the pre-imported server; ``None`` if its cage cannot adopt.

        ``join`` is how the worker enters the cage itself (``None``: the cage adopts it). The
        worker is reused for later stages (``reuse``) only when it can leave the stage's
        cgroup (``home_procs``) and what the stage leaves behind can be killed through it.
        """
        forks = self._server(job.env)
        python = job.python_context is not None
        pid, request = forks.spawn(
            context=str(job.python_context) if python else None,
            argv=None if python else job.argv, cwd=job.cwd, env=dict(job.env),
            stdout=job.stdout, stderr=job.stderr, preload=job.python_module,
            join=None if join is None else dict(join), reuse=reuse, dirs=job.dirs,
            files=job.files)
        if join is not None:  # the worker joins its cage itself before it runs anything
            if cage is not None:
                cage.attach(pid)
            return self._track(pid, None, cage, request)
        try:
            adopted = cage is None or cage.adopt(pid)
        except OSError as exc:
            self._abandon(pid, request)
            raise LauncherError(f"stage {job.stage!r}: cannot cap process {pid}: {exc}",
                                hint="set BLUT_FORKSERVER=0 or choose another BLUT_CONTAINMENT") from None
        if not adopted:
            self._abandon(pid, request)
            self._use_forks = False
            return None
        handle = self._track(pid, None, cage, request)
        forks.go(pid)
        return handle

    def _abandon(self, pid: int, request: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        if self._forks is not None:
            self._forks.go(pid)
            self._forks.wait_exit(request, 5.0)

    def _track(self, pid: int, popen: subprocess.Popen[bytes] | None, cage: Cage | None,
               request: int | None = None) -> JobHandle:
        pidfd: int | None = None
        if request is None:  # a worker's end is told by the server (it may live on)
            try:
                pidfd = os.pidfd_open(pid)
            except (OSError, AttributeError):
                pidfd = None
        job_id = str(pid) if request is None else f"{pid}.{request}"
        self._procs[job_id] = _Proc(pid=pid, popen=popen, cage=cage, pidfd=pidfd,
                                    request=request)
        return JobHandle(launcher=self.name, job_id=job_id, pid=pid,
                         cgroup=None if cage is None else cage.cgroup)

    def _returncode(self, proc: _Proc, *, block: bool, drained: bool = False) -> int | None:
        if proc.popen is not None:
            return proc.popen.wait() if block else proc.popen.poll()
        assert self._forks is not None and proc.request is not None
        if not drained:
            self._forks.drain()  # never lets the server's notices pile up in the socket
        rc = self._forks.exits.get(proc.request)
        if rc is not None or not block:
            return None if rc is None else rc[0]
        return self._forks.wait_exit(proc.request, 30.0)

    def _ended(self, proc: _Proc) -> bool:
        """Whether a worker's request already ended (its worker may now run another stage)."""
        if proc.request is None or self._forks is None:
            return False
        self._forks.drain()
        return proc.request in self._forks.exits

    def poll(self, handle: JobHandle, *, drained: bool = False) -> JobState:
        proc = self._procs.get(handle.job_id)
        if proc is None:
            return JobState(status=JobStatus.EXITED, returncode=None, detail="unknown job")
        if proc.state is not None:
            return proc.state
        rc = self._returncode(proc, block=False, drained=drained)
        if rc is None:
            return JobState(status=JobStatus.RUNNING)
        return self._reap(proc, rc)

    def poll_many(self, handles: Sequence[JobHandle]) -> dict[str, JobState]:
        """Every handle's state, taking in the fork server's notices once for all of them."""
        if self._forks is not None:
            self._forks.drain()
        return {h.job_id: self.poll(h, drained=True) for h in handles}

    def _reap(self, proc: _Proc, rc: int) -> JobState:
        # A stage's own children may outlive it; they belong to the attempt: end them. A
        # reused worker is not one of them (it left the cage, which still holds them).
        reused = (proc.request is not None and self._forks is not None
                  and self._forks.exits.get(proc.request, (0, False))[1])
        if not reused:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        peak = oom = None
        if proc.cage is not None:
            proc.cage.kill()
            peak, oom = proc.cage.peak_bytes(), proc.cage.oom_killed()
            proc.cage.recycle()  # emptied, it may serve a later attempt of the run
        if proc.pidfd is not None:
            os.close(proc.pidfd)
            proc.pidfd = None
        proc.state = JobState(status=JobStatus.EXITED, returncode=rc,
                              signal=-rc if rc < 0 else None, peak_bytes=peak,
                              oom_killed=bool(oom))
        return proc.state

    def signal(self, handle: JobHandle, signum: int) -> None:
        proc = self._procs.get(handle.job_id)
        if proc is not None and proc.state is None and not self._ended(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signum)

    def cancel(self, handle: JobHandle) -> None:
        proc = self._procs.get(handle.job_id)
        if proc is None or proc.state is not None:
            return
        if not self._ended(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.cage is not None:
                proc.cage.kill()
        rc = self._returncode(proc, block=True)
        self._reap(proc, -signal.SIGKILL if rc is None else rc)

    def wait(self, handles: Sequence[JobHandle], timeout: float) -> None:
        """Sleep until a stage process ends or ``timeout`` passes, never polling.

        Processes started here are waited for through their pidfds; stages run by fork
        server workers through the server's notices.
        """
        import time

        deadline = time.monotonic() + max(0.0, timeout)
        fds: list[int] = []
        workers: list[int] = []
        for h in handles:
            proc = self._procs.get(h.job_id)
            if proc is None or proc.state is not None:
                return
            if proc.request is not None:
                workers.append(proc.request)
            elif proc.pidfd is not None:
                fds.append(proc.pidfd)
            else:
                super().wait(handles, timeout)
                return
        while True:
            notices: list[int] = []
            if workers and self._forks is not None:
                self._forks.drain()
                if any(r in self._forks.exits for r in workers):
                    return
                notices = self._forks.filenos()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready: list[int] = []
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select(fds + notices, [], [], left)
            if not ready or any(fd in fds for fd in ready):
                return  # a pidfd, or the timeout; else a worker or the server spoke: look again

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.state is None:
                if not self._ended(proc):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                rc = self._returncode(proc, block=True)
                self._reap(proc, -signal.SIGKILL if rc is None else rc)
        self._procs.clear()
        if self._forks is not None:
            self._forks.close()
            self._forks = None
        if self._containment is not None:
            self._containment.close()  # the cgroups it kept for later attempts
