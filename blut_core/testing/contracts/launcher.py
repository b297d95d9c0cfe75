"""The contract every launcher keeps, as a pytest class to subclass.

::

    from blut_core.testing.contracts import LauncherContract

    class TestMyLauncher(LauncherContract):
        remote = True                 # its stages' memory is not this machine's

        @pytest.fixture
        def launcher(self):
            launcher = MyLauncher(MySettings())
            yield launcher
            launcher.close()

Every test submits real jobs (:class:`~blut_core.model.jobs.Job`) through the launcher and
follows them with ``wait`` and ``poll`` as the executor does; the jobs' directories are
under pytest's ``tmp_path``, which the launcher's workers must see (a cluster on this
machine does). What is checked:

- exit codes and signals come back as the stage's own;
- the stage gets its environment, its working directory, and its stdout and stderr in the
  job's log files; the job's ``dirs`` exist when it starts;
- a stage past its cap is OOM-killed and the state says so from kernel evidence; the
  peak of a 150 MiB stage is within 10 % of 150 MiB, and a remote launcher's peak is the
  kernel's (``PeakSource.KERNEL``), or it says it is sampled;
- cancel is idempotent and reaches the stage's grandchildren; ``signal(SIGTERM)`` reaches
  the stage (soft timeouts); ``close`` leaves nothing running;
- ``wait`` wakes when a job ends, long before its timeout; 20 jobs all finish;
- ``poll_many`` answers for every handle, a remote launcher states its ``capacity()``;
- a remote launcher finds a run's jobs by its tag (``find_jobs``) after its driver is gone.

Launcher-specific cases (a node lost, a scheduler's OOM word) stay in the launcher's own
tests.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from blut_core.host.interfaces import Launcher
from blut_core.model.jobs import Job, JobHandle, JobState, PeakSource
from blut_core.model.sizes import MiB

__all__ = ["LauncherContract"]

#: brings the process to argv[1] bytes resident, holds argv[2] seconds
_FILL = r"""
import sys, time, mmap
target, hold = int(sys.argv[1]), float(sys.argv[2])
with open("/proc/self/statm") as fh:
    rss = int(fh.read().split()[1]) * mmap.PAGESIZE
buf = bytearray(max(0, target - rss))
for i in range(0, len(buf), mmap.PAGESIZE):
    buf[i] = 1
time.sleep(hold)
print("filled", flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class LauncherContract:
    """Subclass as ``Test…`` and provide a ``launcher`` fixture yielding the launcher."""

    #: the launcher's stages do not take this machine's memory (it states a capacity)
    remote: bool = False
    #: seconds a single short job may take, queueing included
    patience: float = 60.0
    #: the run tag the suite's jobs carry
    run_tag: str = "contract"

    # -- helpers -------------------------------------------------------------------------

    def job(self, tmp_path: Path, argv: Sequence[str], *, name: str = "s", attempt: int = 1,
            cap: int | None = 512 * MiB, env: dict[str, str] | None = None) -> Job:
        adir = tmp_path / f"{name}.{attempt}"
        adir.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        full_env.update(env or {})
        tag = f"{self.run_tag}-{os.getpid()}"
        return Job(run_id=tag, stage=name, attempt=attempt, argv=tuple(argv), env=full_env,
                   cwd=str(adir / "work"), stdout=str(adir / "stdout.log"),
                   stderr=str(adir / "stderr.log"), memory_cap=cap, label=f"{tag}.{name}.{attempt}",
                   run_tag=tag, dirs=(str(adir / "work"), str(adir / "out.tmp")))

    def finish(self, launcher: Launcher, handles: Sequence[JobHandle],
               timeout: float | None = None) -> dict[str, JobState]:
        """Follow ``handles`` as the executor does until all are done; their final states."""
        end = time.monotonic() + (timeout or self.patience + 10 * len(handles))
        done: dict[str, JobState] = {}
        while len(done) < len(handles):
            if time.monotonic() > end:
                raise AssertionError(f"{len(handles) - len(done)} job(s) not done in time")
            live = [h for h in handles if h.job_id not in done]
            launcher.wait(live, 1.0)
            for job_id, state in launcher.poll_many(live).items():
                if state.done:
                    done[job_id] = state
        return done

    def run_one(self, launcher: Launcher, job: Job) -> JobState:
        handle = launcher.submit(job)
        return self.finish(launcher, [handle])[handle.job_id]

    def py(self, code: str, *args: str) -> list[str]:
        return [sys.executable, "-c", code, *args]

    def wait_for(self, path: Path, timeout: float | None = None) -> None:
        end = time.monotonic() + (timeout or self.patience)
        while not path.exists() or not path.read_text().strip():
            if time.monotonic() > end:
                raise AssertionError(f"{path} never appeared")
            time.sleep(0.05)

    # -- exits ---------------------------------------------------------------------------

    def test_exit_codes(self, launcher: Launcher, tmp_path: Path) -> None:
        ok = launcher.submit(self.job(tmp_path, ["true"], name="ok"))
        bad = launcher.submit(self.job(tmp_path, ["sh", "-c", "exit 3"], name="bad"))
        states = self.finish(launcher, [ok, bad])
        assert states[ok.job_id].returncode == 0 and not states[ok.job_id].oom_killed
        assert states[bad.job_id].returncode == 3

    def test_signal_is_reported(self, launcher: Launcher, tmp_path: Path) -> None:
        state = self.run_one(launcher, self.job(tmp_path, ["sh", "-c", "kill -USR2 $$"]))
        assert state.signal == signal.SIGUSR2 or state.returncode == -signal.SIGUSR2
        assert not state.oom_killed

    # -- what the stage sees ---------------------------------------------------------------

    def test_environment_cwd_and_logs(self, launcher: Launcher, tmp_path: Path) -> None:
        job = self.job(tmp_path, ["sh", "-c", 'echo "$CONTRACT_VALUE"; pwd; echo oops >&2'],
                       env={"CONTRACT_VALUE": "it's a $value"})
        state = self.run_one(launcher, job)
        assert state.returncode == 0
        out = Path(job.stdout).read_text().splitlines()
        assert out[0] == "it's a $value"
        assert os.path.realpath(out[1]) == os.path.realpath(job.cwd)
        assert Path(job.stderr).read_text().strip() == "oops"

    def test_output_dirs_exist_when_it_starts(self, launcher: Launcher, tmp_path: Path) -> None:
        job = self.job(tmp_path, ["sh", "-c", 'test -d "$1" && test -d "$2" && echo x > "$1/f"', "sh",
                                  str(tmp_path / "s.1" / "out.tmp"), str(tmp_path / "s.1" / "work")])
        assert self.run_one(launcher, job).returncode == 0
        assert (tmp_path / "s.1" / "out.tmp" / "f").read_text() == "x\n"

    def test_command_and_python_stages(self, launcher: Launcher, tmp_path: Path) -> None:
        py = launcher.submit(self.job(tmp_path, self.py("import sys; sys.exit(5)"), name="py"))
        cmd = launcher.submit(self.job(tmp_path, ["sh", "-c", "exit 6"], name="cmd"))
        states = self.finish(launcher, [py, cmd])
        assert (states[py.job_id].returncode, states[cmd.job_id].returncode) == (5, 6)

    # -- memory ----------------------------------------------------------------------------

    def test_oom_under_the_cap_is_classified_oom(self, launcher: Launcher, tmp_path: Path) -> None:
        job = self.job(tmp_path, self.py(_FILL, str(400 * MiB), "0"), cap=100 * MiB)
        state = self.run_one(launcher, job)
        assert state.oom_killed, f"not classified OOM: {state}"
        assert state.returncode != 0
        assert "filled" not in Path(job.stdout).read_text()

    def test_peak_of_150_mib_within_10_percent(self, launcher: Launcher, tmp_path: Path) -> None:
        state = self.run_one(launcher, self.job(tmp_path, self.py(_FILL, str(150 * MiB), "0.5"),
                                                cap=1024 * MiB))
        assert state.returncode == 0
        if state.peak_bytes is None:
            pytest.skip("this launcher's containment reports no peak here")
        assert abs(state.peak_bytes - 150 * MiB) <= 15 * MiB, f"peak {state.peak_bytes / MiB:.1f} MiB"
        if self.remote:
            assert state.peak_source in (PeakSource.KERNEL, PeakSource.SAMPLED)

    # -- stopping ----------------------------------------------------------------------------

    def test_cancel_is_idempotent_and_reaches_grandchildren(self, launcher: Launcher,
                                                            tmp_path: Path) -> None:
        pidfile = tmp_path / "grandchild.pid"
        job = self.job(tmp_path, ["sh", "-c", f'sh -c "sleep 300 & echo \\$! > {pidfile}; wait" & wait'])
        handle = launcher.submit(job)
        self.wait_for(pidfile)
        pid = int(pidfile.read_text())
        assert _alive(pid)
        launcher.cancel(handle)
        launcher.cancel(handle)
        end = time.monotonic() + self.patience
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _alive(pid), "the stage's grandchild survived the cancel"
        assert self.finish(launcher, [handle])[handle.job_id].done

    def test_sigterm_reaches_the_stage(self, launcher: Launcher, tmp_path: Path) -> None:
        ready = tmp_path / "ready"
        job = self.job(tmp_path, ["sh", "-c", f"trap 'exit 7' TERM; echo 1 > {ready}; "
                                              "while true; do sleep 0.1; done"])
        handle = launcher.submit(job)
        self.wait_for(ready)
        launcher.signal(handle, signal.SIGTERM)
        state = self.finish(launcher, [handle])[handle.job_id]
        assert state.returncode == 7, f"SIGTERM did not reach the stage: {state}"

    def test_close_leaves_nothing_running(self, launcher: Launcher, tmp_path: Path) -> None:
        pidfile = tmp_path / "pid"
        launcher.submit(self.job(tmp_path, ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"]))
        self.wait_for(pidfile)
        pid = int(pidfile.read_text())
        launcher.close()
        end = time.monotonic() + self.patience
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _alive(pid), "close() left the stage running"

    # -- waiting and throughput -------------------------------------------------------------

    def test_wait_wakes_on_completion(self, launcher: Launcher, tmp_path: Path) -> None:
        handle = launcher.submit(self.job(tmp_path, ["true"]))
        start = time.monotonic()
        while not launcher.poll(handle).done:
            launcher.wait([handle], 600)
            assert time.monotonic() - start < self.patience, "wait() did not wake on completion"

    def test_twenty_jobs_all_finish(self, launcher: Launcher, tmp_path: Path) -> None:
        handles = [launcher.submit(self.job(tmp_path, ["sh", "-c", f"echo {i}"], name=f"j{i}"))
                   for i in range(20)]
        states = self.finish(launcher, handles, timeout=self.patience * 3)
        assert len(states) == 20
        assert all(s.returncode == 0 for s in states.values())
        assert len({h.job_id for h in handles}) == 20

    # -- remote launchers --------------------------------------------------------------------

    def test_capacity(self, launcher: Launcher) -> None:
        capacity = launcher.capacity()
        if not self.remote:
            assert capacity is None, "a local launcher's stages use this machine's memory"
            return
        assert capacity is not None, "a remote launcher must say where its memory comes from"
        assert capacity.nodes and capacity.max_job_memory > 0 and capacity.max_jobs >= 1
        assert capacity.max_job_memory <= max(n.memory_bytes for n in capacity.nodes)

    def test_find_jobs_by_run_tag(self, launcher: Launcher, tmp_path: Path) -> None:
        job = self.job(tmp_path, ["sleep", "300"])
        handle = launcher.submit(job)
        try:
            if not self.remote:
                assert launcher.find_jobs(job.run_tag) == []
                return
            found = {h.job_id for h in launcher.find_jobs(job.run_tag)}
            assert handle.job_id in found
        finally:
            launcher.cancel(handle)
            self.finish(launcher, [handle])
