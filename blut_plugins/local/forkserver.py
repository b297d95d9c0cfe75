"""A pre-imported interpreter whose forks (*workers*) run stages: a Python stage starts in ~1 ms,
not ~60 ms, and a reused worker starts the next stage without any fork.

Python stages run in the worker itself. A command stage is started by a reused worker with
``posix_spawn`` (no copy of the worker) in the worker's process group and cgroup, and waited
for; the driver then pays one message per command instead of a fork.

The local launcher starts one fork server per run — a fork of the driver that calls
:func:`main`, or where the driver runs other threads ``python -m blut_plugins.local.forkserver
FD`` (:class:`blut_plugins.local.forkclient.ForkClient`). The server only makes and reaps
workers; the driver talks to each worker directly, so a stage's start and end cross one pipe,
not two and a wake-up of the server. Over the server's socket, JSON lines:

- server → driver ``{"op": "spare", "pid"}`` with two file descriptors (``SCM_RIGHTS``): a new
  *worker*, a fork of the server that waits on a pipe for its next request and is the leader
  of its own session; the descriptors are the write end of that pipe and the read end of the
  worker's back channel. The server keeps no end of either: the driver owns the worker from
  then on. It forks ``SPARES`` at start, and more when the driver asks, ``{"op": "fork",
  "n"}`` (the driver keeps ``SPARES`` idle or about to be, so that stages started in a burst
  do not wait for forks).
- driver → worker, on its pipe: ``{"id", "context" | "argv", "dirs", "files", "cwd", "env",
  "stdout", "stderr", "join", "reuse"}``; ``env`` holds only what differs from the server's
  own environment (``None``: unset). The driver knew the pid beforehand, so it waits neither
  for a fork nor for an answer: a spawn costs it one write.
- worker → driver, on its back channel: ``{"id", "returncode", "reused"}`` when the request
  ends: the code as it was (a command killed by a signal is negative); ``reused`` true: it
  finished cleanly and is idle again — it left the stage's cgroup (``join.home_procs``),
  reset its environment, working directory, output and signal handlers — else it exits.
  A worker is reused only after a stage that returned 0, left no thread behind, grew the
  worker by less than ``REUSE_MAX_GROWTH`` bytes and was not its ``REUSE_MAX_STAGES``-th.
- server → driver ``{"op": "died", "pid", "returncode"}`` when a worker exited; a worker
  killed mid-stage (its cap, a timeout, a cancel) never wrote its end, and this is how the
  driver learns its code. A worker the driver no longer wants it retires by closing its pipe.
- driver → server ``{"op": "spawn", "id", ...}`` (the request as above) for a request that
  must import a new stage module into the server first (``preload``; the driver retires the
  workers forked before the import), or without ``join`` (``"hold": true``): a fresh fork of
  the server runs it once, answered ``{"op": "spawned", "id", "pid"}`` and, when it exits,
  ``{"op": "exit", "id", "pid", "returncode"}``. A held fork waits until the driver has
  caged it (``adopt``) and sends ``{"op": "go", "pid"}``.
- the worker first puts itself in the stage's memory cage (``join``: cgroup.procs,
  rlimit; with ``make`` and ``write`` it first creates the cgroup and writes its cap
  itself, so the driver does not), then makes the stage's directories and files,
  redirects its output, takes its environment and runs the stage
  (:mod:`blut_plugins.local.request`), so nothing of the stage ever runs outside its cap.
  It notes the cage it joined in a page it shares with the server (:class:`_Worker`).

Workers are forks of the server: modules the server has imported (blut's runner, and each
stage module after its first use) are shared, and a reused worker pays no fork at all; so a
no-op stage costs well under a millisecond of its process. Module state a stage changes is
seen by later stages of the same worker (as in Ray or Celery workers); ``reuse`` false in a
request, or ``BLUT_REUSE_WORKERS=0`` for the driver, gives every stage a fresh fork.
When the driver goes away (EOF), the server kills its workers' process groups, removes the
cages they had joined, and exits.
"""

from __future__ import annotations

import contextlib
import gc
import json
import mmap
import os
import selectors
import signal
import socket
import sys
from collections.abc import Sequence
from typing import IO, Any

from blut_plugins.local import cages
from blut_plugins.local.request import run_request, write_pid

SPARES = 2  # idle workers the driver keeps waiting for a request (forked ahead)
IDLE_MAX = max(SPARES, os.cpu_count() or 1)  # idle workers the driver keeps when stages end
REUSE_MAX_STAGES = 1000  # stages one worker runs before it is replaced by a fresh fork
REUSE_MAX_GROWTH = 64 << 20  # resident bytes a worker may gain over its life and stay
_SLOT = 4096  # bytes of the page a worker notes its cage in


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _note(slot: mmap.mmap, cage: str | None) -> None:
    """Note in ``slot`` the cgroup directory this worker is in (``None``: none)."""
    data = (cage or "").encode()[:_SLOT - 1] + b"\0"
    slot[:len(data)] = data


def _worker(requests: IO[bytes], back: int, slot: mmap.mmap) -> None:
    """An idle fork: run each request it is handed, reused while it stays clean; never returns."""
    base_env = dict(os.environ)
    base_logging = _logging_state()
    born = _rss()
    me = os.getpid()
    done = 0
    while True:
        line = requests.readline()
        if not line:  # retired by the driver, or the driver is gone
            os._exit(0)
        req = json.loads(line)
        _note(slot, cages.joined(req))  # before it joins: the server can always find it
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
                _note(slot, None)
            except OSError:
                keep = False
        if keep:
            _tidy(base_logging)
        # the code as it was (a command killed by a signal is negative), before exiting or not
        with contextlib.suppress(OSError):  # the driver is gone: the next read ends it
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
    """A fork for one request: wait for "go" (``go_fd``, a held one), run it, exit; never
    returns. A command killed by a signal ends it by that signal, so that its parent reads
    the same code a worker would have said."""
    if go_fd >= 0:
        if os.read(go_fd, 1) != b"g":  # the driver died before saying go
            os._exit(1)
        os.close(go_fd)
    code = run_request(req, dict(os.environ))
    if code < 0:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
    os._exit(code if 0 <= code < 256 else 1)


class _Worker:
    """A worker as the server knows it: its pid, and the page it notes its cage in."""

    def __init__(self, pid: int, slot: mmap.mmap) -> None:
        self.pid = pid
        self.slot = slot

    def cage(self) -> str | None:
        """The cgroup directory it joined last and has not left."""
        with contextlib.suppress(ValueError):
            text = self.slot[:_SLOT].split(b"\0", 1)[0]
            return text.decode() or None
        return None


class _Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.waiting: dict[int, int] = {}   # pid -> write end of its go pipe (held forks)
        self.once: dict[int, tuple[int | None, str | None]] = {}  # pid -> (request id, cage)
        self.workers: dict[int, _Worker] = {}
        self.preloaded: set[str] = set()  # stage modules asked for (the driver keeps the same)

    def send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with contextlib.suppress(OSError):  # the driver is gone: shutdown follows
            if fds:  # the descriptors travel with the message's first byte
                sent = socket.send_fds(self.sock, [data], list(fds))
                data = data[sent:]
            if data:
                self.sock.sendall(data)

    def fork_worker(self) -> None:
        """Fork a worker that waits for its request and hand the driver its two pipe ends."""
        r, w = os.pipe()
        back_r, back_w = os.pipe()
        slot = mmap.mmap(-1, _SLOT)  # shared with the fork
        gc.freeze()  # forks never scan (and so never copy) the server's objects
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
                os.close(back_r)
                self._close_inherited()
                os.setsid()  # a kill of its process group reaches it from its announcement on
                _worker(os.fdopen(r, "rb"), back_w, slot)
            finally:
                os._exit(1)
        os.close(r)
        os.close(back_w)
        self.workers[pid] = _Worker(pid, slot)
        self.send({"op": "spare", "pid": pid}, fds=(w, back_r))
        os.close(w)  # the driver's now: when it goes, the worker reads end-of-file
        os.close(back_r)

    def _close_inherited(self) -> None:
        """In a new fork: close the server's ends of everything (else a fork never sees EOF)."""
        self.sock.close()
        for fd in self.waiting.values():
            os.close(fd)

    def spawn(self, req: dict[str, Any]) -> None:
        """Run request ``req`` once in a fresh fork, after importing its stage module here."""
        target = req.get("preload")
        if target and str(target) not in self.preloaded:  # import it here once; forks share it
            self.preloaded.add(str(target))
            if str(target) not in sys.modules:
                with contextlib.suppress(Exception):
                    __import__(str(target))
        held = bool(req.get("hold"))
        r, w = os.pipe() if held else (-1, -1)
        gc.freeze()  # as for a worker: the stage's cage is charged no copy of the server's pages
        pid = os.fork()
        if pid == 0:
            if w >= 0:
                os.close(w)
            self._close_inherited()
            os.setsid()
            _child(r, req)
        if held:
            os.close(r)
            self.waiting[pid] = w
        self.once[pid] = (req.get("id"), cages.joined(req))
        self.send({"op": "spawned", "id": req.get("id"), "pid": pid})

    def go(self, pid: int) -> None:
        w = self.waiting.pop(pid, None)
        if w is not None:
            with contextlib.suppress(OSError):
                os.write(w, b"g")
            os.close(w)

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
            if pid in self.once:
                request, _ = self.once.pop(pid)
                self.send({"op": "exit", "id": request, "pid": pid, "returncode": code,
                           "reused": False})
            worker = self.workers.pop(pid, None)
            if worker is not None:
                worker.slot.close()
                self.send({"op": "died", "pid": pid, "returncode": code})

    def handle(self, line: bytes) -> None:
        req = json.loads(line)
        op = req.get("op")
        if op == "fork":
            for _ in range(max(0, int(req.get("n") or 1))):
                self.fork_worker()
        elif op == "spawn":
            self.spawn(req)
        elif op == "go":
            self.go(int(req["pid"]))

    def shutdown(self) -> None:
        for pid in list(self.waiting):
            self.go(pid)
        joined = [w.cage() for w in self.workers.values()]
        joined += [cage for _, cage in self.once.values()]
        cages.kill(groups=[*self.workers, *self.once], reap=self.reap,
                   cages=[c for c in joined if c])

    def serve(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        self.sel.register(self.sock, selectors.EVENT_READ, "sock")
        self.sel.register(rfd, selectors.EVENT_READ, "signal")
        for _ in range(SPARES):  # the first requests cost no fork either
            self.fork_worker()
        try:
            while True:
                for key, _ in self.sel.select():
                    if key.data == "signal":
                        with contextlib.suppress(BlockingIOError):
                            os.read(rfd, 512)
                        self.reap()
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
