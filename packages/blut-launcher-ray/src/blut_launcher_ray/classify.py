"""Why a Ray task ended in an exception: Ray's memory monitor, a lost node or worker, a
cancel, or the stage's own error.

What ``ray.get`` raised on the test cluster (Ray 2.60, tasks with ``max_retries=0``; see
``verify_ray_behaviour.py``):

- the stage raised ``ValueError``: ``RayTaskError(ValueError)`` (ERROR);
- the worker process exited (``os._exit``) or was SIGKILLed: ``WorkerCrashedError`` (LOST);
- every process of the task's node was killed: ``NodeDiedError``, at once (LOST);
- an actor's process exited, and any call on the dead actor: ``ActorDiedError`` (LOST);
- ``ray.cancel``, forced or not, of a running or a pending task: ``TaskCancelledError``, or
  ``RayTaskError(TaskCancelledError)`` when the cancel reached the running task's code
  (seen with a local ``ray.init`` instance; CANCELLED either way);
- Ray's node memory monitor killed the worker: ``OutOfMemoryError`` (MEMORY_MONITOR).

The memory monitor's kill is no cap OOM: Ray kills a worker when the *node* runs low, and
picks the newest retriable task, not the one that grew. It is told apart (``MEMORY_MONITOR``)
from a stage OOM-killed by its own cgroup cap, which the launcher learns from the kernel.

Classes are matched by name along the exception's bases (``ray.exceptions.*``), so this
module needs no ``import ray`` and knows names of older Ray versions too (Ray 2.9 has no
``ActorDiedError``, only its base ``RayActorError``).
"""

from __future__ import annotations

import enum
import re

import attrs


class Kind(enum.Enum):
    """How a task ended, as far as blut is concerned."""

    #: Ray's node-wide memory monitor killed the task's worker
    MEMORY_MONITOR = "memory_monitor"
    #: the task's node, worker or actor is gone (not the stage's fault: retry elsewhere)
    LOST = "lost"
    #: the task was cancelled
    CANCELLED = "cancelled"
    #: the stage's own error, or a failure a retry would not mend
    ERROR = "error"


@attrs.frozen
class Verdict:
    """A task's end: its ``kind``, the exception's type name, and one line saying why."""

    kind: Kind
    exception_type: str
    reason: str


#: Ray exception classes (and their subclasses) that mean the task's resources are gone
LOST_CLASSES = frozenset({
    "NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "RayActorError", "ActorDiedError",
    "ActorUnavailableError", "ObjectLostError", "OwnerDiedError", "ObjectReconstructionFailedError",
    "ObjectFetchTimedOutError", "TaskUnschedulableError", "ActorUnschedulableError",
    "TaskPlacementGroupRemoved", "ActorPlacementGroupRemoved", "RaySystemError", "RpcError",
    "OutOfDiskError", "ObjectStoreFullError",
})
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _ray_bases(exc: BaseException) -> list[str]:
    return [c.__name__ for c in type(exc).__mro__ if c.__module__.startswith("ray.")]


def _line(text: str, limit: int = 300) -> str:
    for line in _ANSI.sub("", text).splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return ""


def classify_task_error(exc: BaseException) -> Verdict:
    """The :class:`Verdict` for the exception ``ray.get`` raised for a finished task.

    ``ray.exceptions.GetTimeoutError`` means the task has *not* finished: ``ValueError``.
    """
    bases = _ray_bases(exc)
    name = type(exc).__name__
    if "GetTimeoutError" in bases:
        raise ValueError("GetTimeoutError: the task has not finished, there is nothing to classify")
    if "RayTaskError" in bases:
        # the stage's own exception, re-raised by Ray as RayTaskError(TheStagesError); a
        # cancel that reached the running task comes as RayTaskError(TaskCancelledError)
        cause = getattr(exc, "cause", None)
        if "TaskCancelledError" in bases or (
                isinstance(cause, BaseException) and "TaskCancelledError" in _ray_bases(cause)):
            return Verdict(Kind.CANCELLED, name, "cancelled while running")
        if isinstance(cause, BaseException):
            return Verdict(Kind.ERROR, name, _line(f"{type(cause).__name__}: {cause}"))
        return Verdict(Kind.ERROR, name, _line(str(exc)))
    if "OutOfMemoryError" in bases:
        return Verdict(Kind.MEMORY_MONITOR, name, _line(str(exc)) or "killed by Ray's memory monitor")
    if "TaskCancelledError" in bases:
        return Verdict(Kind.CANCELLED, name, _line(str(exc)) or "cancelled")
    lost = [b for b in bases if b in LOST_CLASSES]
    if lost:
        return Verdict(Kind.LOST, name, _line(str(exc)) or lost[0])
    return Verdict(Kind.ERROR, name, _line(f"{name}: {exc}"))
