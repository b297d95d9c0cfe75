"""``python -m blut_core.process.shim RECORD [--cap BYTES] -- ARGV...``: one stage, remote side.

A cluster launcher (Slurm, Ray) starts this on the compute node instead of the stage. It

- checks that the attempt directory (``RECORD``'s) is visible here: a node that cannot see
  the run directory is one line on stderr naming the path, exit 2 (shared file system);
- runs ``ARGV`` in its own session under a memory cap: as it finds it (a Slurm job's cgroup,
  made by Slurm from ``--mem``), or, with ``--cap``, in a cgroup v1 it makes for the stage
  below its own (inside a Ray task) with ``memory.limit_in_bytes`` set to ``BYTES``;
- passes SIGTERM and SIGINT on to the stage's process group (soft timeouts, cancels), and
  so it does with a signal number the driver writes to ``shim.control`` beside ``RECORD``
  (``9`` kills every process in the stage's cgroup);
- writes the attempt's exit record to ``RECORD`` last, through a temporary file and a rename:
  exit code or signal, the kernel's peak and OOM kills of the cgroup the stage ran in (on
  cgroup v1 the task's cgroup, where the kernel counts them, not the job's), the node, and
  when the stage started and ended.

A launcher reports an attempt finished only once this record is visible from the driver.
Only a few standard modules are imported: it starts fast, and a Ray worker runs it in-process
(the broker's cgroup reading lives a layer beside this one; the few reads the shim needs are
here). The stage starts through the cheap ``vfork`` path, never a ``fork`` of the caller (a
Ray worker's copy of ~100 MiB and 20 threads costs 10-60 ms): a short-lived thread of the
caller moves itself into the stage's cgroup (cgroup v1 places threads one by one), starts the
stage, which is born in the cgroup, and moves back. The caller's memory is charged to its
thread-group leader's cgroup, never the stage's, and nothing of the stage runs outside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: exit code when the shim itself cannot run the stage (no run directory, no program)
EXIT_SHIM = 2
RECORD_VERSION = 1
#: a file in the attempt directory the driver writes a signal number to (SIGTERM for a soft
#: timeout, SIGKILL to cancel): the shim sends it to the stage, where no scheduler can
CONTROL = "shim.control"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def read_int(path: str) -> int | None:
    """An integer file, or ``None`` when absent, unreadable or not a number."""
    try:
        return int((_read(path) or "").strip())
    except ValueError:
        return None


def read_keyed(path: str) -> dict[str, int]:
    """A ``key value`` file (``memory.oom_control``) as a dict."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def own_dir(version: int = 1) -> str | None:
    """This process's cgroup v1 memory directory, or ``None`` (no v1 memory controller)."""
    rel = next((parts[2] for parts in (line.split(":", 2) for line in (_read("/proc/self/cgroup") or "")
                                       .splitlines()) if len(parts) == 3 and "memory" in parts[1].split(",")),
               None)
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and rel is not None and len(fields) >= 5 and len(tail) >= 3 and tail[0] == "cgroup" \
                and "memory" in tail[2].split(","):
            return os.path.normpath(os.path.join(fields[4], rel.lstrip("/")))
    return None


def node_name() -> str:
    """The node as the scheduler names it (Slurm's ``SLURMD_NODENAME``), else the host name."""
    return os.environ.get("SLURMD_NODENAME") or os.environ.get("BLUT_NODE") or os.uname().nodename


def write_record(path: str, record: dict[str, Any], *, sync: bool = True) -> None:
    """``record`` as JSON at ``path``, whole or not at all (temporary file, fsync, rename).

    ``sync`` false skips the fsync, for a caller that hands the record to the driver another
    way as well (a Ray task returns it): the rename alone keeps it whole-or-absent to every
    reader, and a node lost before the driver had it loses the attempt, which is retried.
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_record(path: str) -> dict[str, Any] | None:
    """The exit record at ``path``, or ``None`` while it is not there (or not whole)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


#: stage cgroups this process has made (their names' last part)
_made = 0


class _Cgroup:
    """The v1 memory cgroup the stage runs in, made below the shim's own.

    Its own cgroup keeps the stage's peak and OOM kills apart from the shim's (a few MiB of
    Python). Its limit is ``cap`` when given (inside a Ray task), else none of its own: the
    parent's (a Slurm job's ``--mem``) bounds it. Where no cgroup can be made here (another
    user's cgroup, no v1 memory controller), the stage runs in the shim's own cgroup
    (``shared``): its peak then includes the shim, and a ``cap`` is refused.
    """

    def __init__(self, cap: int | None, label: str) -> None:
        self.made: str | None = None
        base = own_dir(1)
        self.path = self.base = base
        self.shared = True
        if base is None:
            if cap is not None:
                raise SystemExit("blut shim: no cgroup v1 memory controller here to cap the stage at "
                                 f"{cap} bytes")
            return
        global _made
        _made += 1  # a worker running stage after stage never meets a name still being removed
        path = os.path.join(base, f"blut-{label}-{os.getpid()}-{_made}")
        try:
            os.mkdir(path)
        except OSError as exc:
            if cap is not None:
                raise SystemExit(f"blut shim: cannot make a memory cgroup for the stage at {path}: "
                                 f"{exc.strerror}") from None
            return
        self.path = self.made = path
        self.shared = False
        if cap is not None:
            try:
                with open(os.path.join(path, "memory.limit_in_bytes"), "w") as fh:
                    fh.write(str(cap))
                with contextlib.suppress(OSError), \
                        open(os.path.join(path, "memory.memsw.limit_in_bytes"), "w") as fh:
                    fh.write(str(cap))
            except OSError as exc:
                self.release()
                raise SystemExit(f"blut shim: cannot cap the stage's cgroup {path}: {exc.strerror}") from None

    def join(self) -> None:
        """Put the calling process (the stage, before exec) into the cgroup."""
        if self.made is not None:
            with open(os.path.join(self.made, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))

    def start(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(argv, **options)``, the process born in the cgroup.

        A thread of this process moves into the cgroup (its ``tasks``), starts the stage with
        ``vfork`` and ``exec`` (the child inherits the thread's cgroup) and moves back; the
        thread charges nothing there (a process's pages are charged to its leader's cgroup).
        Where a thread cannot be moved, the child joins before ``exec`` (a slower ``fork``).
        """
        if self.made is None:
            return subprocess.Popen(argv, **options)
        made, home = self.made, self.base
        done: dict[str, Any] = {}

        def spawn() -> None:
            tid = str(threading.get_native_id())
            try:
                with open(os.path.join(made, "tasks"), "w") as fh:
                    fh.write(tid)
            except OSError:
                done["moved"] = False
                return
            try:
                done["proc"] = subprocess.Popen(argv, **options)
            except BaseException as exc:  # handed to the caller
                done["error"] = exc
            finally:  # the thread ends here in any case, and with it its place in the cgroup
                with contextlib.suppress(OSError), open(os.path.join(str(home), "tasks"), "w") as fh:
                    fh.write(tid)

        spawner = threading.Thread(target=spawn, name="blut-shim-start", daemon=True)
        spawner.start()
        try:
            spawner.join()
        except BaseException:  # stopped while starting: the stage must not outlive the caller
            while spawner.is_alive():
                with contextlib.suppress(BaseException):
                    spawner.join()
            proc = done.get("proc")
            if proc is not None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
            raise
        if "error" in done:
            raise done["error"]
        if done.get("moved") is False:
            return subprocess.Popen(argv, preexec_fn=self.join, **options)
        proc = done["proc"]
        assert isinstance(proc, subprocess.Popen)
        return proc

    def peak(self) -> int | None:
        return None if self.path is None else read_int(os.path.join(self.path, "memory.max_usage_in_bytes"))

    def oom_kills(self) -> int:
        if self.path is None:
            return 0
        return read_keyed(os.path.join(self.path, "memory.oom_control")).get("oom_kill", 0)

    def kill_all(self) -> None:
        """SIGKILL every process in the stage's cgroup (not the shim: it is not in it)."""
        if self.made is None:
            return
        for pid in (_read(os.path.join(self.made, "cgroup.procs")) or "").split():
            with contextlib.suppress(OSError, ValueError):
                if int(pid) != os.getpid():  # a thread of this process starting the stage
                    os.kill(int(pid), signal.SIGKILL)

    def release(self) -> None:
        if self.made is None:
            return
        procs = os.path.join(self.made, "cgroup.procs")
        for _ in range(50):
            try:
                with open(procs) as fh:
                    pids = [int(p) for p in fh.read().split() if int(p) != os.getpid()]
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            os.rmdir(self.made)


def run(record: str, argv: Sequence[str], *, cap: int | None = None, cwd: str | None = None,
        env: Mapping[str, str] | None = None, stdout: str | None = None,
        stderr: str | None = None, sync: bool = True) -> int:
    """Run ``argv`` and write its exit record to ``record``; return the exit code to end with.

    ``env``, ``stdout`` and ``stderr`` (file paths) are the stage's, when the caller is not
    the stage's own process (a Ray worker calls this in-process; an exception there, such as
    a cancel's, kills the stage's cgroup on its way out). ``sync``: see :func:`write_record`.
    """
    where = os.path.dirname(os.path.abspath(record))
    if not os.path.isdir(where):
        print(f"blut shim: the attempt directory {where} is not visible on node {node_name()}: "
              "the run directory must be on a file system the compute nodes share (BLUT_HOME)",
              file=sys.stderr)
        return EXIT_SHIM
    cgroup = _Cgroup(cap, os.path.basename(where) or "stage")
    started = time.time()
    try:
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(stdout, "ab")) if stdout else None
            err = files.enter_context(open(stderr, "ab")) if stderr else None
            proc = cgroup.start(list(argv), cwd=cwd, start_new_session=True, close_fds=True,
                                env=None if env is None else dict(env), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL if env is not None else None)
    except BaseException as exc:
        cgroup.release()
        if not isinstance(exc, OSError):
            raise
        print(f"blut shim: cannot start {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        write_record(record, {"version": RECORD_VERSION, "returncode": 127, "signal": None,
                              "peak_bytes": None, "oom_kills": 0, "node": node_name(),
                              "started_at": started, "ended_at": time.time(),
                              "error": f"cannot start {argv[0]!r}: {exc.strerror}"}, sync=sync)
        return 127

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(signum, forward)
    control = os.path.join(where, CONTROL)
    pidfd = _pidfd(proc.pid)  # wakes the wait below the moment the stage ends
    poller = select.poll()
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    try:
        while True:
            try:
                if pidfd is None:
                    code = proc.wait(timeout=0.1)
                    break
                if poller.poll(100):
                    code = proc.wait()
                    break
            except subprocess.TimeoutExpired:
                pass
            except BaseException:  # the caller is being stopped: the stage goes first
                cgroup.kill_all()
                forward(signal.SIGKILL, None)
                cgroup.release()
                raise
            request = _read(control)
            if request is None:
                continue
            with contextlib.suppress(OSError):
                os.unlink(control)
            with contextlib.suppress(ValueError):
                wanted = int(request.strip())
                if wanted == signal.SIGKILL:  # the stage's whole tree, forks that left its session too
                    cgroup.kill_all()
                forward(wanted, None)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    ended = time.time()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # what the stage left running goes with it
    rec = {"version": RECORD_VERSION, "returncode": code, "signal": -code if code < 0 else None,
           "peak_bytes": cgroup.peak(), "oom_kills": cgroup.oom_kills(), "node": node_name(),
           "cgroup": cgroup.path, "cgroup_shared_with_shim": cgroup.shared, "cap_bytes": cap,
           "started_at": started, "ended_at": ended}
    cgroup.release()
    write_record(record, rec, sync=sync)
    return code if code >= 0 else 128 - code


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable the moment process ``pid`` ends (``None``: no pidfd here)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


#: :func:`run` under the name the :mod:`blut_core.process` facade gives it
run_shim = run


def main(args: Sequence[str]) -> int:
    usage = "usage: python -m blut_core.process.shim RECORD [--cap BYTES] [--cwd DIR] -- ARGV..."
    if "--" not in args or not args or args[0].startswith("-"):
        print(usage, file=sys.stderr)
        return EXIT_SHIM
    split = list(args).index("--")
    head, argv = list(args[:split]), list(args[split + 1:])
    record, opts = head[0], head[1:]
    cap: int | None = None
    cwd: str | None = None
    while opts:
        flag = opts.pop(0)
        if flag == "--cap" and opts:
            cap = int(opts.pop(0))
        elif flag == "--cwd" and opts:
            cwd = opts.pop(0)
        else:
            print(usage, file=sys.stderr)
            return EXIT_SHIM
    if not argv:
        print(usage, file=sys.stderr)
        return EXIT_SHIM
    return run(record, argv, cap=cap, cwd=cwd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
