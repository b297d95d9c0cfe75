"""A pre-imported interpreter whose forks (*workers*) run stages: a Python stage starts in ~1 ms,
not ~60 ms, and a reused worker starts the next stage without any fork.

Python stages run in the worker itself. A command stage is started by a reused worker with
``posix_spawn`` (no copy of the worker) in the worker's process group and cgroup, and waited
for; the driver then pays one message per command instead of a fork.

The local launcher starts one fork server per run — a fork of the driver that calls
:func:`main`, or where the driver runs other threads ``python -m blut_plugins.local.forkserver
FD`` (:class:`blut_plugins.local.forkclient.ForkClient`) — and talks to it over a socket with
JSON lines:

- server → driver ``{"op": "spare", "pid"}`` whenever a *worker* is idle: a fork of the
  server waiting on a pipe for its next request, the leader of its own session. The server
  keeps ``SPARES`` of them, so that stages started in a burst do not wait for forks either.
- driver → server ``{"op": "spawn", "id", "spare": PID, "context" | "argv", "dirs", "files",
  "cwd", "env", "stdout", "stderr", "join", "reuse"}``: the server hands the request to that worker
  and, if fewer than ``SPARES`` remain idle, forks another. ``env`` holds only what differs
  from the server's own environment (``None``: unset). The driver knew the pid beforehand,
  so it waits neither for a fork nor for an answer: a spawn costs it one message.
- a request that must import a new stage module into the server first (``preload``), or
  without ``join``, names no spare and is answered ``{"op": "spawned", "id", "pid"}``; idle
  workers forked before the import are dropped (``{"op": "dropped", "pid"}``).
- the worker first puts itself in the stage's memory cage (``join``: cgroup.procs,
  rlimit; with ``make`` and ``write`` it first creates the cgroup and writes its cap
  itself, so the driver does not), then makes the stage's directories and files,
  redirects its output, takes its environment and runs the stage
  (:mod:`blut_plugins.local.request`), so nothing of the stage ever runs outside its cap.
  A request without ``join`` (``"hold": true``) gets a fresh fork that waits until the
  driver has caged it (``adopt``) and sends ``{"op": "go", "pid"}``.
- server → driver ``{"op": "exit", "id", "pid", "returncode", "reused"}`` when a request
  ends: its worker exited (``reused`` false: it was killed, or it ended as below), or it
  finished cleanly and was *reused* — it left the stage's cgroup (``join.home_procs``),
  reset its environment, working directory, output and signal handlers, and is idle again
  (announced anew as a spare). A worker is reused only after a stage that returned 0, left
  no thread behind, grew the worker by less than ``REUSE_MAX_GROWTH`` bytes and was not its
  ``REUSE_MAX_STAGES``-th; otherwise it exits.

Workers are forks of the server: modules the server has imported (blut's runner, and each
stage module after its first use) are shared, and a reused worker pays no fork at all; so a
no-op stage costs well under a millisecond of its process. Module state a stage changes is
seen by later stages of the same worker (as in Ray or Celery workers); ``reuse`` false in a
request, or ``BLUT_REUSE_WORKERS=0`` for the driver, gives every stage a fresh fork.
When the driver goes away (EOF), the server kills its workers' process groups and exits.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import sys
from typing import IO, Any

from blut_plugins.local import cages
from blut_plugins.local.request import run_request, write_pid

SPARES = 2  # idle workers kept waiting for a request (forked ahead)
IDLE_MAX = max(SPARES, os.cpu_count() or 1)  # idle workers kept when stages end
REUSE_MAX_STAGES = 1000  # stages one worker runs before it is replaced by a fresh fork
REUSE_MAX_GROWTH = 64 << 20  # resident bytes a worker may gain over its life and stay


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(requests: IO[bytes], back: int) -> None:
    """An idle fork: run each request it is handed, reused while it stays clean; never returns."""
    base_env = dict(os.environ)
    base_logging = _logging_state()
    born = _rss()
    me = os.getpid()
    done = 0
    while True:
        line = requests.readline()
        if not line:  # dropped or retired by the server, or the server is gone
            os._exit(0)
        req = json.loads(line)
        code = run_request(req, base_env)
        if os.getpid() != me:  # a process the stage forked returned here: it is not a worker
            os._exit(code if 0 <= code < 256 else 1)
        done += 1
        home = (req.get("join") or {}).get("home_procs")
        import threading

        keep = bool(req.get("reuse") and home and code == 0 and threading.active_count() == 1
                    and done < REUSE_MAX_STAGES and _rss() - born < REUSE_MAX_GROWTH)
        if keep:
            try:
                write_pid(str(home))  # out of the stage's cgroup: its cage can be removed
            except OSError:
                keep = False
        if keep:
            _tidy(base_logging)
        # the code as it was (a command killed by a signal is negative), before exiting or not
        os.write(back, (json.dumps({"id": req.get("id"), "returncode": code, "reused": keep})
                        + "\n").encode())
        if not keep:
            os._exit(code if 0 <= code < 256 else 1)


def _logging_state() -> tuple[list[Any], int] | None:
    """The root logger's handlers and level, if logging is in use."""
    logging = sys.modules.get("logging")
    if logging is None:
        return None
    root = logging.getLogger()
    return root.handlers[:], root.level


def _tidy(baseline: tuple[list[Any], int] | None) -> None:
    """After a stage, before the next: undo what a stage commonly leaves in its process.

    Its ``sys.stdout``/``sys.stderr`` replacements, and the handlers it added to the root
    logger (``logging.basicConfig(filename=...)`` would otherwise keep writing the next
    stage's log into this stage's file, and make the next one's ``basicConfig`` a no-op):
    the root logger is put back as it was when the worker was forked.
    """
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    logging = sys.modules.get("logging")
    if logging is None:
        return
    handlers, level = baseline if baseline is not None else ([], logging.WARNING)
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _child(go_fd: int, req: dict[str, Any]) -> None:
    """A fork for one held request: wait for "go", run it, exit; never returns."""
    if go_fd >= 0:
        if os.read(go_fd, 1) != b"g":  # the driver died before saying go
            os._exit(1)
        os.close(go_fd)
    os._exit(run_request(req, dict(os.environ)))


class _Worker:
    def __init__(self, pid: int, requests: int, back: int) -> None:
        self.pid = pid
        self.requests = requests  # write end of its request pipe
        self.back = back          # read end of its back channel
        self.buf = b""
        self.request: int | None = None  # id of the request it runs
        self.cage: str | None = None  # the cgroup it joined for it (see cages.kill)


class _Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.waiting: dict[int, int] = {}   # pid -> write end of its go pipe (held forks)
        self.held: dict[int, int | None] = {}  # pid -> request id (held forks)
        self.workers: dict[int, _Worker] = {}
        self.idle: list[int] = []  # workers waiting for a request, most recently idle last
        self.returning: set[int] = set()  # busy workers that will be idle again if all goes well
        self.preloaded: set[str] = set()  # stage modules asked for (the driver keeps the same)

    def send(self, msg: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the driver is gone: shutdown follows
            self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _fill_spares(self) -> None:
        """Fork workers until ``SPARES`` are idle or will be (busy ones that will be reused)."""
        while len(self.idle) + len(self.returning) < SPARES:
            self._fork_worker()

    def _fork_worker(self) -> None:
        """Fork a worker that waits for its request, so the next spawn costs no fork."""
        r, w = os.pipe()
        back_r, back_w = os.pipe()
        gc.freeze()  # forks never scan (and so never copy) the server's objects
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
                os.close(back_r)
                self._close_inherited()
                os.setsid()  # a kill of its process group reaches it from its announcement on
                _worker(os.fdopen(r, "rb"), back_w)
            finally:
                os._exit(1)
        os.close(r)
        os.close(back_w)
        self.workers[pid] = _Worker(pid, w, back_r)
        self.sel.register(back_r, selectors.EVENT_READ, pid)
        self.idle.append(pid)
        self.send({"op": "spare", "pid": pid})

    def _close_inherited(self) -> None:
        """In a new fork: close the server's ends of everything (else a worker never sees EOF)."""
        self.sock.close()
        for other in self.workers.values():
            for fd in (other.requests, other.back):
                if fd >= 0:
                    os.close(fd)
        for fd in self.waiting.values():
            os.close(fd)

    def _retire(self, pid: int, *, announce: bool) -> None:
        """Close the worker's request pipe: it reads end-of-file and exits."""
        worker = self.workers.get(pid)
        if worker is not None and worker.requests >= 0:
            os.close(worker.requests)
            worker.requests = -1
        if pid in self.idle:
            self.idle.remove(pid)
            if announce:
                self.send({"op": "dropped", "pid": pid})

    def spawn(self, req: dict[str, Any], line: bytes | None = None) -> None:
        """Hand request ``req`` to a worker (``line``: its text as the driver sent it, handed on
        as it is instead of written again)."""
        target = req.get("preload")
        if target and str(target) not in self.preloaded:  # import it here once; forks share it
            self.preloaded.add(str(target))
            if str(target) not in sys.modules:
                with contextlib.suppress(Exception):
                    __import__(str(target))
                for pid in list(self.idle):  # forked before the module was here
                    self._retire(pid, announce=True)
        named = req.get("spare")
        if named is not None and named not in self.idle:
            # the driver's view of the idle workers is wrong (a bug): fail this stage, loudly
            with contextlib.suppress(OSError), open(req["stderr"], "a", encoding="utf-8") as fh:
                fh.write(f"blut: fork server has no idle worker {named}\n")
            self.send({"op": "exit", "id": req.get("id"), "pid": named, "returncode": 1,
                       "reused": False})
            return
        if req.get("hold"):
            self._spawn_held(req)
            return
        if not self.idle:
            self._fork_worker()
        pid = named if named is not None else self.idle[-1]
        self.idle.remove(pid)
        worker = self.workers[pid]
        worker.request, worker.cage = req.get("id"), cages.joined(req)
        if req.get("reuse"):
            self.returning.add(pid)
        with contextlib.suppress(OSError):
            os.write(worker.requests, (line if line is not None else json.dumps(req).encode()) + b"\n")
        if named is None:
            self.send({"op": "spawned", "id": req.get("id"), "pid": pid})
        self._fill_spares()  # ready for the next requests

    def _spawn_held(self, req: dict[str, Any]) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            self._close_inherited()
            os.setsid()
            _child(r, req)
        os.close(r)
        self.waiting[pid] = w
        self.held[pid] = req.get("id")
        self.send({"op": "spawned", "id": req.get("id"), "pid": pid})

    def go(self, pid: int) -> None:
        w = self.waiting.pop(pid, None)
        if w is not None:
            with contextlib.suppress(OSError):
                os.write(w, b"g")
            os.close(w)

    def finished(self, pid: int) -> None:
        """A worker's back channel spoke: its request ended; it is idle again, or exiting."""
        worker = self.workers.get(pid)
        if worker is None:
            return
        try:
            data = os.read(worker.back, 65536)
        except OSError:
            data = b""
        if not data:  # it exited: reap() reports it
            self.sel.unregister(worker.back)
            os.close(worker.back)
            worker.back = -1
            return
        worker.buf += data
        while b"\n" in worker.buf:
            line, worker.buf = worker.buf.split(b"\n", 1)
            done = json.loads(line)
            worker.request = worker.cage = None  # reported here, not when reaped; the driver reaps
            self.returning.discard(pid)
            reused = bool(done.get("reused"))
            self.send({"op": "exit", "id": done.get("id"), "pid": pid,
                       "returncode": int(done["returncode"]), "reused": reused})
            if not reused:
                continue  # it exits
            if len(self.idle) < IDLE_MAX and worker.requests >= 0:
                self.idle.append(pid)
                self.send({"op": "spare", "pid": pid})
            else:
                self._retire(pid, announce=False)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            w = self.waiting.pop(pid, None)
            if w is not None:
                os.close(w)
            request = self.held.pop(pid, None)
            self.returning.discard(pid)
            if pid in self.workers and self.workers[pid].back >= 0:
                self.finished(pid)  # what it said before it exited comes first
            worker = self.workers.pop(pid, None)
            if worker is not None:
                request = worker.request
                if worker.back >= 0:
                    self.sel.unregister(worker.back)
                    os.close(worker.back)
                if worker.requests >= 0:
                    os.close(worker.requests)
                if pid in self.idle:  # an idle worker died (killed from outside)
                    self.idle.remove(pid)
                    self.send({"op": "dropped", "pid": pid})
            if request is not None:
                self.send({"op": "exit", "id": request, "pid": pid, "returncode": code,
                           "reused": False})
        self._fill_spares()

    def handle(self, line: bytes) -> None:
        req = json.loads(line)
        op = req.get("op")
        if op == "spawn":
            self.spawn(req, line)
        elif op == "go":
            self.go(int(req["pid"]))

    def shutdown(self) -> None:
        for pid in list(self.idle):
            self._retire(pid, announce=False)
        for pid in list(self.waiting):
            self.go(pid)
        cages.kill(groups=[*self.workers, *self.held], reap=self.reap,
                   cages=[w.cage for w in self.workers.values() if w.cage])

    def serve(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        self.sel.register(self.sock, selectors.EVENT_READ, "sock")
        self.sel.register(rfd, selectors.EVENT_READ, "signal")
        self._fill_spares()  # the first requests cost no fork either
        try:
            while True:
                for key, _ in self.sel.select():
                    if key.data == "signal":
                        with contextlib.suppress(BlockingIOError):
                            os.read(rfd, 512)
                        self.reap()
                        continue
                    if isinstance(key.data, int):
                        self.finished(key.data)
                        continue
                    try:
                        data = self.sock.recv(65536)
                    except OSError:  # the driver went away mid-message
                        return
                    if not data:
                        return
                    self.buf += data
                    while b"\n" in self.buf:
                        line, self.buf = self.buf.split(b"\n", 1)
                        self.handle(line)
                self.reap()
        finally:
            self.shutdown()


def main(argv: list[str]) -> int:
    """``python -m blut_plugins.local.forkserver FD [MODULE...]``: serve the driver on socket ``FD``."""
    sock = socket.socket(fileno=int(argv[0]))
    # Import what every stage needs, and the run's stage modules, before the first fork.
    # hashlib: OpenSSL, which a stage's outputs are digested with; loaded here it is shared
    # by every worker and charged to no stage's cgroup (blut_core loads it when first used).
    import hashlib  # noqa: F401

    from blut_core import StageContext  # noqa: F401
    from blut_core.process import run_stage  # noqa: F401

    server = _Server(sock)
    for module in argv[1:]:
        server.preloaded.add(module)
        with contextlib.suppress(Exception):  # the stage itself reports a broken import
            __import__(module)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
