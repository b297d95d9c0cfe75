"""The driver's end of the fork server (:mod:`blut_plugins.local.forkserver` describes the protocol)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

_CHUNK = 65536  # bytes read from the server at once
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
        self.spares: list[int] = []  # the server's idle workers, not yet used or dropped
        self.preloaded: set[str] = set(preload)
        self.base_env = dict(env)  # the server's environment: requests send differences
        self._full = False  # the last read filled its buffer
        self.used = False  # a request was sent

    def fileno(self) -> int:
        return self.sock.fileno()

    def _send(self, msg: dict[str, Any]) -> None:
        self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _read(self, timeout: float | None) -> list[dict[str, Any]]:
        """Messages that arrive within ``timeout`` (``None``: wait for at least one).

        The socket stays blocking: a look without waiting is one ``recv`` with
        ``MSG_DONTWAIT``, not a switch of the socket's mode and back.
        """
        if timeout is not None and timeout > 0:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return []
        try:
            data = self.sock.recv(_CHUNK, 0 if timeout is None else socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return []
        if not data:
            raise ConnectionError("the fork server stopped")
        self._full = len(data) == _CHUNK  # more may be waiting already
        self.buf += data
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            op, pid = msg.get("op"), msg.get("pid")
            if op == "exit" and msg.get("id") is not None:
                self.exits.setdefault(int(msg["id"]), (int(msg["returncode"]),
                                                       bool(msg.get("reused"))))
            elif op == "spare":
                self.spares.append(int(pid))
            elif op in ("spawned", "dropped") and pid in self.spares:
                self.spares.remove(int(pid))
            out.append(msg)
        return out

    def spawn(self, *, cwd: str, env: dict[str, str], stdout: str, stderr: str,
              join: dict[str, Any] | None, context: str | None = None,
              argv: Sequence[str] | None = None, preload: str | None = None,
              reuse: bool = False, dirs: Sequence[str] = (),
              files: Sequence[tuple[str, str]] = ()) -> tuple[int, int]:
        """Run a Python stage (``context``) or a command (``argv``) in a worker; return the
        worker's pid and the request's id.

        With ``join`` the worker puts itself under its cap and runs at once; without, a
        fresh fork waits for :meth:`go` (the caller puts it under its cap first). When the
        stage's module is already in the server, the request goes to an announced idle
        worker and this returns without waiting for an answer. With ``reuse`` the worker
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
        request = {"op": "spawn", "id": ident, "context": context,
                   "argv": None if argv is None else list(argv), "cwd": cwd, "env": changes,
                   "stdout": stdout, "stderr": stderr, "preload": preload, "join": join,
                   "hold": join is None, "reuse": reuse,
                   "dirs": list(dirs), "files": [list(f) for f in files]}
        if not self.spares:
            self.drain()
        if join is not None and (preload is None or preload in self.preloaded) and self.spares:
            pid = self.spares.pop()  # the most recently idle: its memory is warmest
            self._send({**request, "spare": pid})
            return pid, ident
        if preload:
            self.preloaded.add(preload)
        self._send(request)
        while True:
            for msg in self._read(None):
                if msg.get("op") == "spawned" and msg.get("id") == ident:
                    return int(msg["pid"]), ident

    def go(self, pid: int) -> None:
        self._send({"op": "go", "pid": pid})

    def drain(self) -> None:
        """Take in notices that have arrived, without waiting (one ``recv`` unless a full one)."""
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
        """Stop the server: it reads end-of-file, ends its idle workers and exits.

        A server that never ran a stage is killed instead of waited for: it may still be
        importing (a run whose few command stages all started before it was up would wait
        for its start-up to end); its idle workers, if any, see their request pipe close and
        exit, in no stage's cgroup.
        """
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
