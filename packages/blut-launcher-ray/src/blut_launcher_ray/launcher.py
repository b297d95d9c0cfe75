"""The Ray launcher: each stage attempt one Ray task, its cap a kernel cap inside the task.

The task asks Ray for ``num_cpus`` and ``memory=`` (the cap, checked by :mod:`.sizes`), and
its worker runs the shim in-process (:mod:`.task`): the shim makes a cgroup for the stage
with that limit and starts the stage in it, so a stage past its cap is OOM-killed by the
kernel exactly as it would be locally, and it writes the attempt's exit record last. The
task returns that record, read back on its node once it is in place: an attempt is finished
when its task has ended with its record (or, failing that, when the record is visible here).

How a task ends, when it has no record: Ray's node memory monitor killed it (``lost``, with
its reason: it was the node that ran low, not the stage past its cap), its node or worker
died (``lost``: retried), it was cancelled.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from blut_core import Job, JobHandle, JobState, JobStatus, Launcher, LauncherError
from blut_core.model import Capacity, NodeCapacity, PeakSource
from blut_core.process import read_record
from blut_launcher_ray.classify import Kind, classify_task_error
from blut_launcher_ray.settings import RaySettings, head_endpoint
from blut_launcher_ray.sizes import SizeError, infeasible_reason, task_size
from blut_launcher_ray.task import run_attempt

RECORD = "exit.json"
CONTROL = "shim.control"
#: how long a finished task's exit record may take to become visible here
RECORD_GRACE = 10.0
#: seconds a ``ray.nodes()`` answer serves the size checks of later submissions
NODES_FRESH = 5.0


class RayLauncher(Launcher):
    """Submits attempts as Ray tasks and follows them with one ``ray.wait`` per round."""

    name = "ray"

    def __init__(self, options: RaySettings | None = None, containment: Any = None) -> None:
        self.settings = options or RaySettings()
        self._ray: Any = None
        self._remote: Any = None
        self._refs: dict[str, Any] = {}
        self._dirs: dict[str, str] = {}
        self._ended: dict[str, float] = {}
        self._done: dict[str, JobState] = {}
        self._count = 0
        self._node_list: list[dict[str, Any]] = []
        self._nodes_at: float | None = None

    def _connect(self) -> Any:
        if self._ray is None:
            try:
                import ray
            except ImportError:
                raise LauncherError("ray: the ray package is not installed",
                                    hint="pip install blut-launcher-ray") from None
            if not ray.is_initialized():
                _check_reachable(self.settings.address or os.environ.get("RAY_ADDRESS"))
                try:
                    ray.init(**self.settings.init_kwargs())
                except Exception as exc:
                    raise LauncherError(f"ray: cannot connect to the cluster: {exc}".splitlines()[0],
                                        hint="set RAY_ADDRESS or [launcher.ray] address") from None
            self._ray = ray
            self._remote = ray.remote(max_retries=0)(run_attempt)
        return self._ray

    def prepare(self, env: Mapping[str, str], python_modules: Sequence[str]) -> None:
        # Connecting is all: a no-op task sent to every node here, to have Ray start this
        # driver's workers while the run is set up, made 50-stage runs slower, not faster
        # (measured on the test cluster: more workers started at once on a busy machine)
        self._connect()

    def submit(self, job: Job) -> JobHandle:
        self._connect()
        try:
            size = task_size(job.cpus, job.memory_cap)
        except SizeError as exc:
            raise LauncherError(f"stage {job.stage!r}: cannot be a Ray task: {exc}",
                                hint="check the stage's footprint and cpus") from None
        why = infeasible_reason(size, self._nodes())
        if why is not None:
            raise LauncherError(f"stage {job.stage!r}: {why}", hint="declare a smaller footprint")
        job_dir = os.path.dirname(job.stdout)
        record = os.path.join(job_dir, RECORD)
        argv = list(job.argv)  # sys.executable in it: the same interpreter path on every node
        ref = self._remote.options(**size.options(), name=f"blut.{job.run_tag or job.run_id}.{job.stage}") \
            .remote(record, argv, dict(job.env), job.cwd, job.stdout, job.stderr, job.memory_cap,
                    list(job.dirs))
        self._count += 1
        job_id = f"{job.run_tag or job.run_id}.{self._count}"
        self._refs[job_id] = ref
        self._dirs[job_id] = job_dir
        return JobHandle(launcher=self.name, job_id=job_id)

    def _nodes(self) -> list[dict[str, Any]]:
        """``ray.nodes()``, asked at most every few seconds (one RPC to the GCS each)."""
        now = time.monotonic()
        if self._nodes_at is None or now - self._nodes_at > NODES_FRESH:
            self._node_list = list(self._connect().nodes())
            self._nodes_at = now
        return self._node_list

    def poll_many(self, handles: Sequence[JobHandle]) -> dict[str, JobState]:
        live = [h.job_id for h in handles if h.job_id not in self._done and h.job_id in self._refs]
        ready: set[Any] = set()
        if live:
            refs = [self._refs[j] for j in live]
            ready = set(self._connect().wait(refs, num_returns=len(refs), timeout=0)[0])
        out: dict[str, JobState] = {}
        for h in handles:
            if h.job_id in self._done or h.job_id not in self._refs:
                out[h.job_id] = self._done.get(h.job_id) or JobState(status=JobStatus.LOST,
                                                                     detail="unknown job")
            elif self._refs[h.job_id] in ready:
                out[h.job_id] = self._finished(h.job_id)
            else:
                out[h.job_id] = JobState(status=JobStatus.RUNNING)
        return out

    def poll(self, handle: JobHandle) -> JobState:
        return self.poll_many([handle])[handle.job_id]

    def _finished(self, job_id: str) -> JobState:
        ray = self._connect()
        error: BaseException | None = None
        returned: Any = None
        try:
            returned = ray.get(self._refs[job_id], timeout=0)
        except Exception as exc:
            error = exc
        if error is None and isinstance(returned, dict):  # the record, in place on its node
            return self._settle(job_id, from_record(returned))
        record = read_record(os.path.join(self._dirs[job_id], RECORD))
        if record is not None and (error is None or classify_task_error(error).kind is not Kind.LOST):
            return self._settle(job_id, from_record(record))
        if error is not None:
            verdict = classify_task_error(error)
            if verdict.kind is Kind.CANCELLED:
                return self._settle(job_id, JobState(status=JobStatus.EXITED, returncode=None,
                                                     signal=9, detail=f"ray: {verdict.reason}"))
            if verdict.kind is Kind.ERROR:
                return self._settle(job_id, JobState(status=JobStatus.EXITED, returncode=1,
                                                     detail=f"ray: {verdict.reason}"))
            what = "Ray's memory monitor killed it (its node ran low, not the stage past its cap)" \
                if verdict.kind is Kind.MEMORY_MONITOR else verdict.reason
            return self._settle(job_id, JobState(status=JobStatus.LOST, detail=f"ray: {what}"))
        first = self._ended.setdefault(job_id, time.monotonic())
        if time.monotonic() - first < RECORD_GRACE:
            return JobState(status=JobStatus.RUNNING)
        where = os.path.join(self._dirs[job_id], RECORD)
        return self._settle(job_id, JobState(
            status=JobStatus.LOST, detail=f"ray: the task ended without its exit record {where}: can "
                                          "its node see the run directory? (see its stderr log)"))

    def _settle(self, job_id: str, state: JobState) -> JobState:
        self._done[job_id] = state
        return state

    def wait(self, handles: Sequence[JobHandle], timeout: float) -> None:
        refs = [self._refs[h.job_id] for h in handles
                if h.job_id in self._refs and h.job_id not in self._done]
        if not refs:
            time.sleep(min(timeout, 0.05))
            return
        self._connect().wait(refs, num_returns=1, timeout=max(0.0, min(timeout, self.settings.poll_interval)))

    def signal(self, handle: JobHandle, signum: int) -> None:
        job_dir = self._dirs.get(handle.job_id)
        if job_dir is not None and handle.job_id not in self._done:
            with contextlib.suppress(OSError), open(os.path.join(job_dir, CONTROL), "w") as fh:
                fh.write(str(signum))

    def cancel(self, handle: JobHandle) -> None:
        ref = self._refs.get(handle.job_id)
        if ref is None or handle.job_id in self._done:
            return
        self.signal(handle, 9)  # the shim kills the stage's cgroup, wherever it runs
        with contextlib.suppress(Exception):
            self._connect().cancel(ref, force=False)

    def capacity(self) -> Capacity:
        nodes = [n for n in self._nodes() if n.get("Alive")]
        found = tuple(NodeCapacity(name=_node_name(n),
                                   memory_bytes=int(n.get("Resources", {}).get("memory", 0)),
                                   cpus=float(n.get("Resources", {}).get("CPU", 0)))
                      for n in nodes)
        if not found:
            raise LauncherError("ray: no live node", hint="ray status shows the cluster")
        return Capacity(nodes=found, max_job_memory=max(n.memory_bytes for n in found),
                        max_job_cpus=max(n.cpus for n in found), max_jobs=10_000)

    def find_jobs(self, run_tag: str) -> list[JobHandle]:
        # Ray tasks end with their driver (they are owned by it): none outlive a dead driver
        return []

    def close(self) -> None:
        for job_id in list(self._refs):
            self.cancel(JobHandle(launcher=self.name, job_id=job_id))
        deadline = time.monotonic() + 10
        for job_id, job_dir in self._dirs.items():
            while job_id not in self._done and time.monotonic() < deadline and \
                    not os.path.exists(os.path.join(job_dir, RECORD)):
                time.sleep(0.05)


def _node_name(node: Mapping[str, Any]) -> str:
    """A node's name: the test cluster's own resource (``node1``...), else its address."""
    named = [r for r in node.get("Resources", {}) if r.startswith("node") and r[4:].isdigit()]
    return named[0] if named else str(node.get("NodeManagerAddress", ""))


def from_record(record: Mapping[str, Any]) -> JobState:
    """The attempt's final state from its shim's exit record."""
    rc, sig, peak = record.get("returncode"), record.get("signal"), record.get("peak_bytes")
    return JobState(status=JobStatus.EXITED, returncode=rc if isinstance(rc, int) else None,
                    signal=sig if isinstance(sig, int) else None,
                    peak_bytes=peak if isinstance(peak, int) else None,
                    oom_killed=int(record.get("oom_kills") or 0) > 0, peak_source=PeakSource.KERNEL,
                    node=str(record.get("node") or ""), started_at=record.get("started_at"),
                    detail=str(record.get("error") or ""))


#: seconds a cluster's head gets to accept a connection before the run stops
CONNECT_TIMEOUT = 5.0


def _check_reachable(address: str | None) -> None:
    """Stop at once, in one line, when nothing accepts connections at the cluster's address:
    ``ray.init`` would wait about two minutes for its GCS before saying so."""
    endpoint = head_endpoint(address)
    if endpoint is None:
        return
    import socket

    try:
        socket.create_connection(endpoint, timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__.replace("Error", " error").lower() or str(exc)
        raise LauncherError(f"ray: nothing answers at {address} ({why})",
                            hint="start the cluster (ray start --head), or set RAY_ADDRESS or "
                                 "[launcher.ray] address to where its head listens") from None
