"""What a launcher is given and gives back: a job, its handle, and its state."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping

import attrs


class JobStatus(enum.Enum):
    """Where a submitted job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    EXITED = "exited"


@attrs.frozen(kw_only=True)
class Job:
    """Everything a launcher needs to start one attempt of one stage.

    ``argv`` is final (no shell involved unless the stage asked for one and ``argv`` says
    so); ``stdout`` and ``stderr`` are file paths; ``memory_cap`` is the kernel cap in bytes
    that containment must enforce (``None``: no cap was decided).
    """

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
    #: For Python stages: the context file and the module to import. A launcher may then run
    #: the stage in a pre-imported interpreter instead of ``argv`` (same meaning, faster).
    python_context: str | None = None
    python_module: str | None = None
    #: Directories the stage needs before it starts (its output and scratch, ``cwd``
    #: among them), made where it runs: by the launcher, or by the process it starts.
    dirs: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class JobHandle:
    """What ``submit`` returns: enough to poll and cancel the job."""

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

    status: JobStatus
    returncode: int | None = None
    signal: int | None = None
    peak_bytes: int | None = None
    oom_killed: bool = False
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.status is JobStatus.EXITED
