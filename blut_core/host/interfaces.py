"""Small interfaces that plugins implement. Methods return values; no callbacks.

- :class:`Launcher`: where a stage process runs (``submit`` → handle, ``poll`` → state,
  ``cancel``). The executor only talks to this interface, so ``local``, ``slurm`` and
  ``ray`` are interchangeable.
- :class:`Containment` and :class:`Cage`: how one stage's memory is capped by the kernel.
- :class:`FootprintModel`: how a stage's declaration and drivers become bytes.

The records these exchange (:class:`~blut_core.model.jobs.Job` and friends) live in
:mod:`blut_core.model.jobs`; this module imports nothing heavy, so a plugin can subclass these at
import time without slowing the CLI's start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blut_core.model.capacity import Capacity
    from blut_core.model.jobs import Job, JobHandle, JobState


class Launcher(ABC):
    """Runs stage attempts somewhere. One instance per run.

    A launcher that runs jobs on this machine leaves :meth:`capacity` as it is (``None``):
    the broker then admits against this box and books in its machine-wide ledger. A remote
    launcher returns its :class:`~blut_core.model.capacity.Capacity` and overrides
    :meth:`poll_many` (one status query for all of a run's jobs) and :meth:`find_jobs`.
    """

    name: str = ""
    #: True when the launcher makes an attempt's directories (``Job.dirs``) and writes its
    #: ``Job.files`` where the stage runs, before starting it: the driver then leaves the
    #: attempt's directory and context file of a new run to it (fewer file-system calls on
    #: the driver's path). False: the driver makes them before :meth:`submit`.
    writes_files: bool = False

    @abstractmethod
    def submit(self, job: Job) -> JobHandle:
        """Start ``job``; return at once with a handle. Raise ``LauncherError`` on refusal."""

    @abstractmethod
    def poll(self, handle: JobHandle) -> JobState:
        """Return the job's state now, without blocking."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Stop the job and everything it started. Idempotent."""

    def poll_many(self, handles: Sequence[JobHandle]) -> dict[str, JobState]:
        """States of many jobs, by ``job_id``. The default polls each; a cluster launcher
        asks its scheduler once for all of them (the executor calls this once per tick)."""
        return {h.job_id: self.poll(h) for h in handles}

    def capacity(self) -> Capacity | None:
        """Where this launcher's stages get their memory: ``None`` for this machine."""
        return None

    def find_jobs(self, run_tag: str) -> list[JobHandle]:
        """Jobs of the run tagged ``run_tag`` still known to the launcher (cancel, resume).

        Local jobs die with their driver's process group and are found by pid; a cluster's
        outlive the driver, and this is how ``blut cancel`` and ``blut resume`` reach them.
        """
        return []

    def expect(self, commands: int) -> None:  # noqa: B027 - optional
        """Optional: how many command stages the run may start, told once before
        :meth:`prepare` (a launcher may get ready differently for a few than for many)."""

    def prepare(self, env: Mapping[str, str], python_modules: Sequence[str]) -> None:  # noqa: B027
        """Optional: get ready before the first ``submit`` (start servers, import modules).

        ``env`` is the environment Python stages run with, ``python_modules`` the modules of
        the run's Python stages. Called once, when the run starts.
        """

    def signal(self, handle: JobHandle, signum: int) -> None:  # noqa: B027 - optional
        """Send ``signum`` to the job's process group (soft timeouts). Optional."""

    def wait(self, handles: Sequence[JobHandle], timeout: float) -> None:
        """Block until one of ``handles`` may have changed state, or ``timeout`` passed.

        The default sleeps a short while; launchers that can be woken by the kernel (the
        local launcher uses pidfds) override it so the executor never busy-waits.
        """
        time.sleep(min(timeout, 0.05))

    def close(self) -> None:  # noqa: B027 - optional
        """Release what the launcher holds at the end of a run."""


class Cage(ABC):
    """One stage's kernel memory cap, for the life of one attempt.

    ``cgroup`` is the cage's cgroup directory when it has one (the ledger reads how much of
    a booking is already in use from it).
    """

    cgroup: str | None = None

    @abstractmethod
    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """Return the argv to start and an optional function the child runs before exec."""

    def attach(self, pid: int) -> None:  # noqa: B027 - optional
        """Called in the parent right after the child started."""

    def join_spec(self) -> Mapping[str, Any] | None:
        """How a forked process puts *itself* under this cap, as plain data, or ``None``.

        Understood keys: ``cgroup_procs`` (a ``cgroup.procs`` file to write one's own pid
        to) and ``rlimit_as`` (bytes for ``RLIMIT_AS``). The fork server's child applies it
        before running the stage; an empty mapping means nothing to do.
        """
        return None

    def adopt(self, pid: int) -> bool:
        """Put ``pid`` (started, not yet running the stage) under this cap.

        Return ``False`` when this backend can only cap a process it starts itself (then the
        launcher starts the stage with :meth:`wrap`). Used by the fork server.
        """
        return False

    @abstractmethod
    def peak_bytes(self) -> int | None:
        """The peak memory the whole process tree needed, if known: the kernel's figure, less
        the page cache it could have reclaimed (what a rerun must be given, not what it cached)."""

    @abstractmethod
    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this cage for hitting its cap."""

    @abstractmethod
    def kill(self) -> None:
        """Kill every process in the cage (the whole tree, forks included)."""

    @abstractmethod
    def release(self) -> None:
        """Remove what the cage created (e.g. the cgroup). Idempotent."""

    def recycle(self) -> None:
        """End the attempt like :meth:`release`, letting the containment reuse what it can for
        a later cage (the cgroup backends keep the emptied cgroup); the default releases."""
        self.release()


class Containment(ABC):
    """A way to cap a stage's memory on this machine (cgroup v2/v1, systemd, rlimit, bare).

    ``enforces`` is ``False`` for a backend that sets no cap at all (``bare``): ``plan`` and
    ``run`` warn loudly when it is the one in use. ``kernel_evidence`` says whether cages
    report the kernel's peak and OOM kills (cgroups) or not (rlimit, bare).
    """

    name: str = ""
    enforces: bool = True
    kernel_evidence: bool = True

    @abstractmethod
    def unusable_reason(self) -> str | None:
        """``None`` when usable here; otherwise one line saying why not."""

    @abstractmethod
    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """Prepare a cage for one attempt, capped at ``cap_bytes``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Remove what the containment kept for later cages (recycled cgroups) at the end of
        a run; idempotent, and cages made afterwards are still removed when released."""


class FootprintModel(ABC):
    """Turns a stage's footprint declaration and drivers into bytes.

    Estimates must be conservative-high (an estimate too small ends as an OOM kill and a
    retry) and monotone non-decreasing in every driver (right-sizing relies on it).
    """

    name: str = ""

    @abstractmethod
    def check(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> None:
        """Raise ``ConfigError`` (one line, with a hint) when ``spec`` is not valid."""

    @abstractmethod
    def estimate(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> int:
        """Peak bytes of a stage declared by ``spec`` running with ``drivers``."""


class ProcessGroupCage(Cage):
    """A cage that caps nothing: it remembers the stage's process group and kills it.

    The base of the bare and rlimit cages; a containment that adds a limit by other means
    (a pre-exec step, a wrapper) extends it.
    """

    def __init__(self) -> None:
        self._pid: int | None = None

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """The argv unchanged."""
        return list(argv), None

    def attach(self, pid: int) -> None:
        """Remember the stage's pid (its process group)."""
        self._pid = pid

    def join_spec(self) -> dict[str, Any] | None:
        """Nothing to join."""
        return {}

    def adopt(self, pid: int) -> bool:
        """Nothing to set up: remember the pid."""
        self._pid = pid
        return True

    def peak_bytes(self) -> int | None:
        """Unknown."""
        return None

    def oom_killed(self) -> bool:
        """Unknown, so never claimed."""
        return False

    def kill(self) -> None:
        """SIGKILL the stage's process group."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)

    def release(self) -> None:
        """Nothing to remove."""
