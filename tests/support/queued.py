"""A cluster stand-in for the executor's remote seam: jobs queue before they start.

``QueuedLauncher`` holds each job in a queue for ``QUEUED_SECONDS`` (env) before it starts
it on this machine through the local launcher, and reports what a cluster's launcher
reports: ``PENDING`` while queued, then the time the job really started. With
``QUEUED_PEAKS=sampled`` its peaks are sampled (shown, never calibrated); with
``QUEUED_CAPACITY=BYTES`` it is a remote launcher whose largest job is ``BYTES``.
The module is also a cookbook (``queuebook``) of the stages the tests run on it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from blut_core import (
    CookbookSpec,
    Footprint,
    Job,
    JobHandle,
    JobState,
    JobStatus,
    Launcher,
    LauncherSpec,
    Plan,
    Recipe,
    Stage,
    Timeouts,
    hookimpl,
)
from blut_core.model import Capacity, NodeCapacity, PeakSource
from blut_plugins.local.launcher import LocalLauncher

_ids = itertools.count(1)


class QueuedLauncher(Launcher):
    name = "queued"

    def __init__(self, options: Any = None, containment: Any = None) -> None:
        self.inner = LocalLauncher(None, containment)
        self.queue_seconds = float(os.environ.get("QUEUED_SECONDS", "1.0"))
        self.sampled = os.environ.get("QUEUED_PEAKS") == "sampled"
        self.max_job = int(os.environ.get("QUEUED_CAPACITY") or 0)
        self.queued: dict[str, tuple[float, Job]] = {}
        self.real: dict[str, JobHandle] = {}
        self.started: dict[str, float] = {}
        self.dropped: set[str] = set()  # cancelled while still queued

    def submit(self, job: Job) -> JobHandle:
        job_id = f"q{next(_ids)}"
        self.queued[job_id] = (time.monotonic() + self.queue_seconds, job)
        return JobHandle(launcher=self.name, job_id=job_id)

    def _advance(self) -> None:
        now = time.monotonic()
        for job_id, (due, job) in list(self.queued.items()):
            if now >= due:
                del self.queued[job_id]
                self.real[job_id] = self.inner.submit(job)
                self.started[job_id] = time.time()

    def poll(self, handle: JobHandle) -> JobState:
        self._advance()
        if handle.job_id in self.dropped:
            return JobState(status=JobStatus.EXITED, returncode=-9, signal=9, detail="cancelled")
        if handle.job_id in self.queued:
            return JobState(status=JobStatus.PENDING, detail="queued")
        state = attrs.evolve(self.inner.poll(self.real[handle.job_id]),
                             started_at=self.started[handle.job_id], node="stand-in")
        if self.sampled and state.peak_bytes:
            state = attrs.evolve(state, peak_source=PeakSource.SAMPLED)
        return state

    def wait(self, handles: Sequence[JobHandle], timeout: float) -> None:
        if self.queued:
            timeout = min(timeout, max(0.0, min(d for d, _ in self.queued.values()) - time.monotonic()))
        real = [self.real[h.job_id] for h in handles if h.job_id in self.real]
        if real:
            self.inner.wait(real, timeout)
        else:
            time.sleep(min(timeout, 0.05))

    def cancel(self, handle: JobHandle) -> None:
        if self.queued.pop(handle.job_id, None) is not None:
            self.dropped.add(handle.job_id)
        elif handle.job_id in self.real:
            self.inner.cancel(self.real[handle.job_id])

    def signal(self, handle: JobHandle, signum: int) -> None:
        if handle.job_id in self.real:
            self.inner.signal(self.real[handle.job_id], signum)

    def capacity(self) -> Capacity | None:
        if not self.max_job:
            return None
        return Capacity(nodes=(NodeCapacity(name="stand-in", memory_bytes=2 * self.max_job, cpus=4),),
                        max_job_memory=self.max_job, max_job_cpus=4, max_jobs=4)

    def close(self) -> None:
        self.inner.close()


@hookimpl
def blut_launchers() -> Iterator[LauncherSpec]:
    yield LauncherSpec(name="queued", summary="a cluster stand-in whose jobs queue first",
                       factory=QueuedLauncher)


@attrs.frozen(kw_only=True)
class Queue:
    need: str = "64M"      # the big stage's footprint
    fail_flag: str = ""    # while this file exists, the stage "flaky" fails


def _timeouts(p: Queue) -> Plan:
    return Plan.of(
        Stage.command("quick", ["sleep", "0.3"], timeouts=Timeouts(hard=1.0), cache=False,
                      footprint=Footprint.fixed("16M")),
        Stage.command("slow", ["sleep", "5"], timeouts=Timeouts(hard=1.0), cache=False,
                      footprint=Footprint.fixed("16M")),
    )


def _big(p: Queue) -> Plan:
    return Plan.of(
        Stage.command("flaky", ["sh", "-c", 'test ! -e "$1"', "flaky", p.fail_flag], cache=False,
                      footprint=Footprint.fixed("16M")),
        Stage.command("big", ["true"], inputs=["flaky"], cache=False,
                      footprint=Footprint.fixed(p.need)),
    )


def _peak(p: Queue) -> Plan:
    return Plan.of(Stage.command("p", ["python3", "-c", "b = bytearray(48 << 20)"], cache=False,
                                 footprint=Footprint.fixed("256M")))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="queuebook", summary="stages for the queued stand-in launcher")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="timeouts", summary="a hard timeout on queued jobs", params=Queue, build=_timeouts)
    yield Recipe(name="big", summary="a stage bigger than this box, after a flaky one",
                 params=Queue, build=_big)
    yield Recipe(name="peak", summary="one stage with a real peak", params=Queue, build=_peak)
