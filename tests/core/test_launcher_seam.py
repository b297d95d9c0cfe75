"""The launcher seam every launcher shares: lost jobs, start times, peak sources, capacity."""

from __future__ import annotations

from blut_core import JobHandle, JobState, JobStatus, Launcher
from blut_core.model import Capacity, NodeCapacity, PeakSource


class _Counting(Launcher):
    name = "counting"

    def __init__(self) -> None:
        self.polls = 0

    def submit(self, job):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def poll(self, handle: JobHandle) -> JobState:
        self.polls += 1
        return JobState(status=JobStatus.RUNNING)

    def cancel(self, handle: JobHandle) -> None:
        pass


def test_a_lost_job_is_done_and_says_so() -> None:
    lost = JobState(status=JobStatus.LOST, detail="NODE_FAIL on node2", node="node2")
    assert lost.done and lost.lost and lost.returncode is None
    assert JobState(status=JobStatus.EXITED, returncode=0).done
    assert not JobState(status=JobStatus.PENDING).done


def test_peaks_say_where_they_came_from() -> None:
    assert JobState(status=JobStatus.EXITED, peak_bytes=1).peak_source is PeakSource.KERNEL
    sampled = JobState(status=JobStatus.EXITED, peak_bytes=1, peak_source=PeakSource.SAMPLED)
    assert sampled.peak_source.value == "sampled"


def test_a_local_launcher_has_no_capacity_and_polls_each_job() -> None:
    launcher = _Counting()
    handles = [JobHandle(launcher="counting", job_id=str(i)) for i in range(3)]
    states = launcher.poll_many(handles)
    assert set(states) == {"0", "1", "2"} and launcher.polls == 3
    assert launcher.capacity() is None and launcher.find_jobs("run-1") == []


def test_capacity_adds_up_its_nodes() -> None:
    cap = Capacity(nodes=(NodeCapacity(name="a", memory_bytes=4 << 30, cpus=2),
                          NodeCapacity(name="b", memory_bytes=8 << 30, cpus=4)),
                   max_job_memory=8 << 30, max_job_cpus=4, max_jobs=10)
    assert cap.memory_bytes == 12 << 30
