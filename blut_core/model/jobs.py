"""What a launcher is given and gives back: a job, its handle and its state.

The same records serve every launcher. A local one runs jobs on this machine, whose memory
the broker probes itself; a remote one (Slurm, Ray) also states its capacity
(:mod:`blut_core.model.capacity`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping

import attrs

from blut_core.model.reprs import record_repr


class JobStatus(enum.Enum):
    """Where a submitted job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    EXITED = "exited"
    #: the job is gone without an exit record: its node failed, the scheduler lost it, or
    #: its exit record never became visible (``JobState.detail`` says which)
    LOST = "lost"


class PeakSource(enum.Enum):
    """Where a job's peak memory figure came from."""

    #: the kernel's own peak of the job's cgroup: exact, and calibration learns from it
    KERNEL = "kernel"
    #: sampled from outside (a scheduler's accounting, polling RSS): shown, never calibrated
    SAMPLED = "sampled"


@attrs.frozen(kw_only=True)
class Job:
    """Everything a launcher needs to start one attempt of one stage.

    ``argv`` is final (no shell involved unless the stage asked for one and ``argv`` says
    so); ``stdout`` and ``stderr`` are file paths; ``memory_cap`` is the kernel cap in bytes
    that containment must enforce (``None``: no cap was decided).
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    stage: str
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    stdout: str
    stderr: str
    memory_cap: int | None = None
    cpus: float = 1.0
    label: str = ""
    #: seconds the job may run once started (the stage's hard timeout); a cluster launcher
    #: passes it to its scheduler, which then counts from the job's start, not its queueing
    time_limit: float | None = None
    #: tags every job of one run, so a launcher can find them again (cancel, resume)
    run_tag: str = ""
    #: For Python stages: the context file and the module to import. A launcher may then run
    #: the stage in a pre-imported interpreter instead of ``argv`` (same meaning, faster).
    python_context: str | None = None
    python_module: str | None = None
    #: Directories the stage needs before it starts (its output and scratch, ``cwd``
    #: among them), made where it runs: by the launcher, or by the process it starts.
    dirs: tuple[str, ...] = ()
    #: Files to write (path, text) once ``dirs`` exist, before the stage starts: filled in
    #: only for a launcher whose ``writes_files`` is true (the attempt's ``context.json``,
    #: which the driver writes itself for any other launcher).
    files: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class JobHandle:
    """What ``submit`` returns: enough to poll and cancel the job."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    launcher: str
    job_id: str
    pid: int | None = None
    submitted_at: float = attrs.field(factory=time.time)
    #: the job's memory cgroup on this machine, when its containment made one (the booking
    #: ledger then counts only what the stage does not use yet)
    cgroup: str | None = None


@attrs.frozen(kw_only=True)
class JobState:
    """What ``poll`` returns. ``returncode`` is set once ``status`` is ``EXITED``.

    ``oom_killed`` comes from kernel evidence (the cgroup's OOM counter), never from
    guessing at an exit code; ``peak_bytes`` is the kernel's peak for the stage's cgroup
    when containment can tell, else ``None``.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    status: JobStatus
    returncode: int | None = None
    signal: int | None = None
    peak_bytes: int | None = None
    oom_killed: bool = False
    detail: str = ""
    #: where ``peak_bytes`` came from; only a kernel peak calibrates
    peak_source: PeakSource = PeakSource.KERNEL
    #: when the job really started (epoch seconds; ``None``: not yet, or not known) — a
    #: hard timeout counts from here, so time spent queued on a cluster is not charged
    started_at: float | None = None
    #: the node (host) it ran on, when the launcher knows
    node: str = ""

    @property
    def done(self) -> bool:
        """The job will not change any more: it exited, or it is lost."""
        return self.status is JobStatus.EXITED or self.status is JobStatus.LOST

    @property
    def lost(self) -> bool:
        return self.status is JobStatus.LOST
