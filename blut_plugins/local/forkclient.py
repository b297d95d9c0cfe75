"""The driver's end of the fork server (:mod:`blut_plugins.local.forkserver` describes the protocol)."""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

_CHUNK = 65536  # bytes read from the server at once
_FDS_SPACE = socket.CMSG_SPACE(8 * 4)  # room for the descriptors that come with one message
#: the most a driver may hold resident and be forked into the fork server (``blut run``
#: holds ~25 MiB; a program calling ``start_run`` may hold far more)
FORK_MAX_RESIDENT = 256 << 20


def _resident() -> int:
    """This process's resident bytes."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return FORK_MAX_RESIDENT + 1  # unknown: not forked


class _Chan:
    """A worker the driver talks to directly: its request pipe and its back channel."""

    __slots__ = ("back", "buf", "pid", "request", "requests", "reuse")

    def __init__(self, pid: int, requests: int, back: int) -> None:
        self.pid = pid
        self.requests = requests  # write end of its request pipe (-1: closed)
        self.back = back          # read end of its back channel, non-blocking (-1: closed)
        self.buf = b""
        self.request: int | None = None  # the request it runs
        self.reuse = False  # it may be idle again after it


class ForkClient:
    """The driver's end: start the server, spawn stages, learn how they ended."""

    def __init__(self, env: dict[str, str], preload: Sequence[str] = (), *,
                 fork: bool = True) -> None:
        """Start the server with environment ``env``, importing the stage modules ``preload``.

        The server is a fork of the driver when ``fork`` allows (``BLUT_FORKSERVER_FORK``,
        read by the launcher), the driver runs no other thread and holds
        at most :data:`FORK_MAX_RESIDENT` bytes (a fork is up in ~2 ms, with blut and the
        recipe's modules already imported; a new interpreter takes ~60 ms, which the run's
        first stage waits for), else a new interpreter (``python -m
        blut_plugins.local.forkserver``): a fork of a process with threads may inherit a
        lock another thread held, and a fork of a big one (a notebook that calls
        ``start_run``) would keep every page the driver later frees or changes alive in the
        server, as its own copy.
        """
        import threading

        from blut_plugins.local.forkserver import IDLE_MAX, SPARES

        self._spares_kept, self._idle_max = SPARES, IDLE_MAX
        mine, theirs = socket.socketpair()
        self.sock = mine
        self.proc: _Server | subprocess.Popen[bytes]
        if fork and threading.active_count() == 1 and _resident() <= FORK_MAX_RESIDENT:
            self.proc = _fork_server(mine, theirs, env, preload)
        else:
            import subprocess

            self.proc = subprocess.Popen(
                [sys.executable, "-m", "blut_plugins.local.forkserver", str(theirs.fileno()),
                 *preload], pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.buf = b""
        self.exits: dict[int, tuple[int, bool]] = {}  # request id -> (return code, reused)
        self._next = 0
        self.spares: list[int] = []  # idle workers, most recently idle last
        self._workers: dict[int, _Chan] = {}  # pid -> every worker the driver holds
        self._busy: dict[int, _Chan] = {}  # back channel -> a worker running a request
        self._fds: deque[int] = deque()  # descriptors received, not yet taken by a "spare"
        self._pending = SPARES  # workers asked of the server, not announced yet
        self.preloaded: set[str] = set(preload)
        self.base_env = dict(env)  # the server's environment: requests send differences
        self._full = False  # the last read filled its buffer, or stopped at descriptors
        self.used = False  # a request was sent

    def filenos(self) -> list[int]:
        """What to wait on for the next notice: the server's socket and every busy worker's
        back channel."""
        return [self.sock.fileno(), *self._busy]

    def _send(self, msg: dict[str, Any]) -> None:
        self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _read(self, timeout: float | None) -> list[dict[str, Any]]:
        """Messages that arrive within ``timeout`` (``None``: wait for at least one), from
        the server and from busy workers.

        The socket stays blocking: a look at it alone without waiting is one ``recv`` with
        ``MSG_DONTWAIT``, not a switch of the socket's mode and back.
        """
        self._full = False
        sockfd = self.sock.fileno()
        if self._busy or (timeout is not None and timeout > 0):
            ready, _, _ = select.select(self.filenos(), [], [],
                                        None if timeout is None else max(0.0, timeout))
            if not ready:
                return []
            flags = int(socket.MSG_DONTWAIT)
        else:
            ready = [sockfd]
            flags = 0 if timeout is None else int(socket.MSG_DONTWAIT)
        out: list[dict[str, Any]] = []
        for fd in ready:
            chan = self._busy.get(fd)
            if chan is not None:
                out += self._from_worker(chan)
        if sockfd in ready:
            out += self._from_server(flags)
        return out

    def _from_server(self, flags: int) -> list[dict[str, Any]]:
        try:  # (socket.recv_fds of Python 3.11 drops its flags)
            data, ancdata, _, _ = self.sock.recvmsg(_CHUNK, _FDS_SPACE,
                                                    flags | socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return []
        fds = [fd for level, kind, raw in ancdata
               if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
               for fd in array.array("i", raw[:len(raw) - len(raw) % 4])]
        self._fds.extend(fds)
        if not data:
            raise ConnectionError("the fork server stopped")
        # a read stops after a message with descriptors: more may be waiting already
        self._full = len(data) == _CHUNK or bool(fds)
        self.buf += data
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            op = msg.get("op")
            if op == "exit" and msg.get("id") is not None:
                self.exits.setdefault(int(msg["id"]), (int(msg["returncode"]), False))
            elif op == "spare":
                self._pending = max(0, self._pending - 1)
                requests, back = self._fds.popleft(), self._fds.popleft()
                os.set_blocking(back, False)
                chan = _Chan(int(msg["pid"]), requests, back)
                self._workers[chan.pid] = chan
                self.spares.append(chan.pid)
            elif op == "died":
                out += self._died(int(msg["pid"]), int(msg["returncode"]))
            out.append(msg)
        return out

    def _from_worker(self, chan: _Chan) -> list[dict[str, Any]]:
        """What worker ``chan`` said of its request (it ended), if anything yet."""
        try:
            data = os.read(chan.back, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return []
        if not data:  # it exited without a word: the server's "died" tells how
            self._busy.pop(chan.back, None)
            os.close(chan.back)
            chan.back = -1
            return []
        chan.buf += data
        out = []
        while b"\n" in chan.buf:
            line, chan.buf = chan.buf.split(b"\n", 1)
            done = json.loads(line)
            ident, code, reused = int(done["id"]), int(done["returncode"]), bool(done["reused"])
            self._ended(chan, ident, code, reused)
            out.append({"op": "exit", "id": ident, "pid": chan.pid, "returncode": code,
                        "reused": reused})
        return out

    def _ended(self, chan: _Chan, ident: int, code: int, reused: bool) -> None:
        """Request ``ident`` of worker ``chan`` ended: the worker is idle again, or gone."""
        self.exits.setdefault(ident, (code, reused))
        self._busy.pop(chan.back, None)
        chan.request = None
        if reused and chan.requests >= 0 and len(self.spares) < self._idle_max:
            self.spares.append(chan.pid)
        else:
            self._retire(chan)
        self._top_up()

    def _died(self, pid: int, code: int) -> list[dict[str, Any]]:
        """The server reaped worker ``pid``: what it said last comes first, else ``code`` is
        its request's."""
        chan = self._workers.get(pid)
        if chan is None:
            return []
        out = self._from_worker(chan) if chan.request is not None and chan.back >= 0 else []
        if chan.request is None:  # idle, or it said how its request ended (then it is let go)
            self._retire(chan)
            self._top_up()
            return out
        ident = chan.request  # killed mid-request: it never said
        self._ended(chan, ident, code, False)  # lets it go and asks for another
        out.append({"op": "exit", "id": ident, "pid": pid, "returncode": code, "reused": False})
        return out

    def _retire(self, chan: _Chan) -> None:
        """Let go of a worker: closing its pipe makes it exit if it is idle."""
        self._workers.pop(chan.pid, None)
        self._busy.pop(chan.back, None)
        if chan.pid in self.spares:
            self.spares.remove(chan.pid)
        for fd in (chan.requests, chan.back):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        chan.requests = chan.back = -1

    def _top_up(self) -> None:
        """Ask the server for forks while fewer than ``SPARES`` workers are idle or will be
        (busy ones that may be reused)."""
        returning = sum(1 for c in self._busy.values() if c.reuse)
        want = self._spares_kept - len(self.spares) - returning - self._pending
        if want > 0:
            self._pending += want
            with contextlib.suppress(OSError):  # the server is gone: the next read says so
                self._send({"op": "fork", "n": want})

    def spawn(self, *, cwd: str, env: dict[str, str], stdout: str, stderr: str,
              join: dict[str, Any] | None, context: str | None = None,
              argv: Sequence[str] | None = None, preload: str | None = None,
              reuse: bool = False, dirs: Sequence[str] = (),
              files: Sequence[tuple[str, str]] = ()) -> tuple[int, int]:
        """Run a Python stage (``context``) or a command (``argv``) in a worker; return the
        worker's pid and the request's id.

        With ``join`` the worker puts itself under its cap and runs at once; without, a
        fresh fork waits for :meth:`go` (the caller puts it under its cap first). When the
        stage's module is already in the server, the request goes to an idle worker
        and this returns without waiting for an answer. With ``reuse`` the worker
        may serve later requests after this one ends cleanly. ``dirs`` are made by the
        worker, in its cage, before it changes to ``cwd``, and then ``files`` (path, text)
        are written, before the stage's logs are opened.
        """
        base = self.base_env
        changes: dict[str, str | None] = {k: v for k, v in env.items() if base.get(k) != v}
        changes.update({k: None for k in base if k not in env})
        self._next += 1
        self.used = True
        ident = self._next
        request = {"id": ident, "context": context,
                   "argv": None if argv is None else list(argv), "cwd": cwd, "env": changes,
                   "stdout": stdout, "stderr": stderr, "preload": preload, "join": join,
                   "hold": join is None, "reuse": reuse,
                   "dirs": list(dirs), "files": [list(f) for f in files]}
        if not self.spares:
            self.drain()
        if join is not None and (preload is None or preload in self.preloaded):
            line = (json.dumps(request) + "\n").encode()
            while not self.spares:  # all busy: a worker forked for it (it sets up outside the cage)
                if not self._pending:
                    self._pending += 1
                    self._send({"op": "fork", "n": 1})
                self._read(None)
            while self.spares:
                chan = self._workers[self.spares.pop()]  # the most recently idle: warmest
                if self._hand(chan, line):
                    chan.request, chan.reuse = ident, reuse
                    self._busy[chan.back] = chan
                    self._top_up()
                    return chan.pid, ident
        stale = bool(preload) and preload not in self.preloaded
        if preload:
            self.preloaded.add(preload)
        self._send({"op": "spawn", **request})
        if stale:  # forked before the server imports the module: fresh forks will have it
            for pid in list(self.spares):
                self._retire(self._workers[pid])
            self._top_up()
        while True:
            for msg in self._read(None):
                if msg.get("op") == "spawned" and msg.get("id") == ident:
                    return int(msg["pid"]), ident

    def _hand(self, chan: _Chan, line: bytes) -> bool:
        """Write request ``line`` to idle worker ``chan``; False if it is gone (killed while
        idle: the server's "died" follows)."""
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(chan.requests, view):]
        except OSError:
            self._retire(chan)
            return False
        return True

    def go(self, pid: int) -> None:
        self._send({"op": "go", "pid": pid})

    def drain(self) -> None:
        """Take in notices that have arrived, without waiting."""
        while self._read(0.0) and self._full:
            pass

    def wait_exit(self, ident: int, timeout: float) -> int | None:
        """The return code of request ``ident``, waiting up to ``timeout`` for its notice."""
        import time

        deadline = time.monotonic() + timeout
        while ident not in self.exits:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._read(left)
        return self.exits[ident][0]

    def close(self) -> None:
        """Stop the server: it reads end-of-file, ends its workers and exits.

        A server that never ran a stage is killed instead of waited for: it may still be
        importing (a run whose few command stages all started before it was up would wait
        for its start-up to end); its idle workers, if any, see their request pipe close and
        exit, in no stage's cgroup.
        """
        for chan in list(self._workers.values()):
            self._retire(chan)
        while self._fds:
            with contextlib.suppress(OSError):
                os.close(self._fds.popleft())
        with contextlib.suppress(OSError):
            self.sock.close()
        if not self.used:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


#: signals whose driver handlers a forked server must not run (it sets its own after)
_RESET = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
                                             "SIGALRM", "SIGCHLD", "SIGWINCH") if hasattr(signal, n))


class _Server:
    """The forked server's process, as much of :class:`subprocess.Popen` as the client uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import subprocess

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("fork server", timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return self.returncode if self.returncode is not None else 0

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _fork_server(mine: socket.socket, theirs: socket.socket, env: dict[str, str],
                 preload: Sequence[str]) -> _Server:
    """Fork the driver into the fork server, as ``python -m blut_plugins.local.forkserver``
    would start: its own session, ``env`` as its environment, no standard input or output."""
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid:
        return _Server(pid)
    code = 1
    try:
        mine.close()
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in _RESET:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        os.environ.clear()
        os.environ.update(env)
        # what a new interpreter would find on PYTHONPATH (the stage modules' folders)
        sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                        if p and p not in sys.path]
        from blut_plugins.local import forkserver

        code = forkserver.main([str(theirs.fileno()), *preload])
    except BaseException:  # nothing of the driver runs on in this process
        code = 1
    finally:
        os._exit(code)
