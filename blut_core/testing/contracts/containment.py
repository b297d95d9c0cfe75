"""The contract every containment backend keeps, as a pytest class to subclass.

::

    from blut_core.testing.contracts import ContainmentContract

    class TestMyBackend(ContainmentContract):
        def make_containment(self):
            return MyBackend()

Every test starts real processes the way the local launcher does (``cage.wrap``, a new
session, ``cage.attach``; or, for the fork server, a process that joins through
``cage.join_spec()`` itself). A backend that is not usable on this machine is skipped with
its own reason; a test that needs what the backend does not claim (``enforces``,
``kernel_evidence``) is skipped saying so. What is checked:

- the cap is enforced: a stage that allocates far past it does not survive, and the attempt
  is classified OOM from the kernel's evidence (a backend without kernel evidence must
  never claim an OOM kill);
- the kernel's peak of a 150 MiB stage is within 10 % of 150 MiB;
- ``kill`` reaches the stage's grandchildren (also those that left its session, when the
  backend tracks the whole tree, as cgroups do);
- ``release`` leaves nothing behind: no process, no cgroup, and a second release is harmless.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from blut_core.host.interfaces import Cage, Containment
from blut_core.model.sizes import MiB, format_size

__all__ = ["ContainmentContract"]

#: A stage that brings its whole process to ``argv[1]`` bytes resident (its interpreter
#: included), holds it for ``argv[2]`` seconds, then says so on stdout.
_FILL = r"""
import sys, time, mmap
target, hold = int(sys.argv[1]), float(sys.argv[2])
page = mmap.PAGESIZE
with open("/proc/self/statm") as fh:
    rss = int(fh.read().split()[1]) * page
chunks, need, step = [], max(0, target - rss), 8 << 20
while need > 0:
    n = min(step, need)
    buf = bytearray(n)
    for i in range(0, n, page):
        buf[i] = 1
    chunks.append(buf)
    need -= n
time.sleep(hold)
print("survived", flush=True)
"""

#: A stage that starts a grandchild in its own process group and, with ``argv[2] == "1"``, one
#: in a session of its own; writes their pids to ``argv[1]``; then sleeps (or exits at once
#: with ``argv[3] == "exit"``, leaving them behind).
_TREE = r"""
import os, subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
kids = [subprocess.Popen(sleeper)]
if sys.argv[2] == "1":
    kids.append(subprocess.Popen(sleeper, start_new_session=True))
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as fh:
    fh.write(" ".join(str(k.pid) for k in kids))
os.replace(tmp, sys.argv[1])
if sys.argv[3] != "exit":
    time.sleep(300)
"""

#: A process started outside the cage that puts itself under it from ``join_spec`` (as a
#: fork-server worker does), then fills like ``_FILL``.
_JOIN = r"""
import json, os, sys
spec = json.loads(sys.argv[3])
if spec.get("cgroup_procs"):
    with open(spec["cgroup_procs"], "w") as fh:
        fh.write(str(os.getpid()))
if spec.get("rlimit_as"):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (spec["rlimit_as"], spec["rlimit_as"]))
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


class ContainmentContract:
    """Tests a containment backend keeps; subclass and implement :meth:`make_containment`."""

    #: whether ``kill`` and ``release`` reach processes that left the stage's session (a
    #: cgroup holds the whole tree; a process-group cage only reaches its group)
    tracks_new_sessions: bool = True
    #: the peak test's stage size and how far the kernel's peak may be from it
    stage_bytes: int = 150 * MiB
    peak_tolerance: float = 0.10
    #: a cap the fill test's stage goes far past
    small_cap: int = 96 * MiB
    timeout: float = 60.0

    def make_containment(self) -> Containment:
        """The backend under test (a fresh instance)."""
        raise NotImplementedError("implement make_containment() in your test class")

    # -- helpers -------------------------------------------------------------------------

    @pytest.fixture
    def containment(self) -> Containment:
        backend = self.make_containment()
        reason = backend.unusable_reason()
        if reason is not None:
            pytest.skip(f"{backend.name or type(backend).__name__} is not usable here: {reason}")
        return backend

    @pytest.fixture
    def cages(self) -> Any:
        """Cages made in a test; each is released when the test ends, whatever happened."""
        made: list[Cage] = []
        yield made
        for cage in made:
            cage.kill()
            cage.release()

    def start(self, cage: Cage, argv: Sequence[str], out: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``cage`` the way the local launcher does."""
        wrapped, preexec = cage.wrap(list(argv))
        with out.open("wb") as fh:
            proc = subprocess.Popen(wrapped, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, preexec_fn=preexec)
        cage.attach(proc.pid)
        return proc

    def finish(self, cage: Cage, proc: subprocess.Popen[bytes]) -> tuple[int, int | None, bool]:
        """Wait for the stage; then, as the launcher does: kill the rest, read the evidence."""
        try:
            rc = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            cage.kill()
            proc.wait(timeout=10)
            pytest.fail(f"the stage did not end within {self.timeout:g}s", pytrace=False)
        cage.kill()
        return rc, cage.peak_bytes(), cage.oom_killed()

    # -- the contract --------------------------------------------------------------------

    def test_says_in_one_line_whether_it_is_usable(self) -> None:
        backend = self.make_containment()
        assert backend.name, "a containment has a name"
        reason = backend.unusable_reason()
        assert reason is None or (isinstance(reason, str) and reason.strip()
                                  and "\n" not in reason.strip()), repr(reason)

    def test_cap_is_enforced_and_an_oom_is_classified(self, containment: Containment,
                                                      cages: list[Cage], tmp_path: Path) -> None:
        from blut_core.model.jobs import JobState, JobStatus
        from blut_core.model.outcome import Classification
        from blut_core.run.attempt import classify

        if not containment.enforces:
            pytest.skip(f"{containment.name} sets no cap (enforces=False)")
        cage = containment.cage("contract-oom", self.small_cap)
        cages.append(cage)
        out = tmp_path / "out.txt"
        proc = self.start(cage, [sys.executable, "-c", _FILL, str(4 * self.small_cap), "0"], out)
        rc, _, oom = self.finish(cage, proc)
        assert rc != 0 and "survived" not in out.read_text(errors="replace"), \
            f"a stage allocating {format_size(4 * self.small_cap)} under a " \
            f"{format_size(self.small_cap)} cap survived (exit {rc})"
        cls = classify(_attempt(tmp_path), JobState(status=JobStatus.EXITED, returncode=rc,
                                                    oom_killed=oom))
        if containment.kernel_evidence:
            assert oom, "the kernel's OOM kill was not reported by oom_killed()"
            assert cls is Classification.OOM
        else:
            assert not oom, "a backend without kernel evidence claimed an OOM kill"
            assert cls is Classification.ERROR

    def test_a_process_that_joins_through_join_spec_is_capped(
            self, containment: Containment, cages: list[Cage], tmp_path: Path) -> None:
        import json

        if not containment.enforces:
            pytest.skip(f"{containment.name} sets no cap (enforces=False)")
        cage = containment.cage("contract-join", self.small_cap)
        cages.append(cage)
        spec = cage.join_spec()
        if spec is None:
            pytest.skip(f"{containment.name} cages cannot be joined by a forked process")
        out = tmp_path / "out.txt"
        with out.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-c", _JOIN + _FILL, str(4 * self.small_cap), "0",
                                     json.dumps(dict(spec))], stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        cage.attach(proc.pid)
        rc, _, oom = self.finish(cage, proc)
        assert rc != 0 and "survived" not in out.read_text(errors="replace"), \
            f"a process that joined through {dict(spec)} was not capped (exit {rc})"
        if containment.kernel_evidence:
            assert oom, "the kernel's OOM kill was not reported by oom_killed()"
        else:
            assert not oom, "a backend without kernel evidence claimed an OOM kill"

    def test_peak_of_a_150_mib_stage_is_within_10_percent(
            self, containment: Containment, cages: list[Cage], tmp_path: Path) -> None:
        if not containment.kernel_evidence:
            pytest.skip(f"{containment.name} reports no kernel peak (kernel_evidence=False)")
        cage = containment.cage("contract-peak", 4 * self.stage_bytes)
        cages.append(cage)
        out = tmp_path / "out.txt"
        proc = self.start(cage, [sys.executable, "-c", _FILL, str(self.stage_bytes), "0.2"], out)
        rc, peak, oom = self.finish(cage, proc)
        assert rc == 0 and not oom, out.read_text(errors="replace")
        assert peak is not None, "peak_bytes() is None for a backend with kernel evidence"
        low, high = self.stage_bytes * (1 - self.peak_tolerance), self.stage_bytes * (1 + self.peak_tolerance)
        assert low <= peak <= high, \
            f"peak {format_size(peak)} of a {format_size(self.stage_bytes)} stage is not within " \
            f"{self.peak_tolerance:.0%}"

    def test_kill_reaches_grandchildren(self, containment: Containment, cages: list[Cage],
                                        tmp_path: Path) -> None:
        cage = containment.cage("contract-kill", 1024 * MiB if containment.enforces else None)
        cages.append(cage)
        pids_file = tmp_path / "pids"
        proc = self.start(cage, [sys.executable, "-c", _TREE, str(pids_file),
                                 "1" if self.tracks_new_sessions else "0", "stay"],
                          tmp_path / "out.txt")
        kids: list[int] = []
        try:
            assert _wait_until(pids_file.exists, self.timeout), "the stage never started its children"
            kids = [int(p) for p in pids_file.read_text().split()]
            cage.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail("kill() did not end the stage itself", pytrace=False)
            assert _wait_until(lambda: not any(_alive(p) for p in kids), 10), \
                f"kill() left grandchildren running: {[p for p in kids if _alive(p)]}"
        finally:
            _end(proc, kids)

    def test_release_leaves_nothing(self, containment: Containment, tmp_path: Path) -> None:
        unused = containment.cage("contract-unused", 64 * MiB)
        unused.release()
        if unused.cgroup is not None:
            assert not os.path.exists(unused.cgroup), f"release() left {unused.cgroup}"
        cage = containment.cage("contract-release", 1024 * MiB if containment.enforces else None)
        pids_file = tmp_path / "pids"
        proc = self.start(cage, [sys.executable, "-c", _TREE, str(pids_file),
                                 "1" if self.tracks_new_sessions else "0", "exit"],
                          tmp_path / "out.txt")
        kids: list[int] = []
        try:
            rc = proc.wait(timeout=self.timeout)
            assert rc == 0, (tmp_path / "out.txt").read_text(errors="replace")
            kids = [int(p) for p in pids_file.read_text().split()]
            assert any(_alive(p) for p in kids), "the stage's children should outlive it"
            cage.kill()
            cage.release()
            assert _wait_until(lambda: not any(_alive(p) for p in kids), 10), \
                f"release() left processes running: {[p for p in kids if _alive(p)]}"
            if cage.cgroup is not None:
                assert not os.path.exists(cage.cgroup), f"release() left {cage.cgroup}"
            cage.release()  # idempotent
        finally:
            _end(proc, kids)
            if cage.cgroup is not None:
                _wait_until(lambda: _removed(str(cage.cgroup)), 5)


def _removed(path: str) -> bool:
    with contextlib.suppress(OSError):
        os.rmdir(path)
    return not os.path.exists(path)


def _end(proc: subprocess.Popen[bytes], kids: Sequence[int]) -> None:
    """Whatever the backend did: no process a test started outlives it."""
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                ours = b"time.sleep(300)" in fh.read()
        except OSError:
            continue
        if ours and _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _attempt(tmp: Path) -> Any:
    """A command stage's attempt record, for :func:`blut_core.run.attempt.classify`."""
    from blut_core.model.jobs import JobHandle
    from blut_core.model.stage import Stage
    from blut_core.run.attempt import Attempt

    stage = Stage.command("contract", ["true"])
    return Attempt(stage=stage, number=1, handle=JobHandle(launcher="contract", job_id="1"),
                   dir=tmp, tmp_out=tmp / "out.tmp", key=None, started=time.monotonic())
