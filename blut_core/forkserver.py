"""A pre-imported interpreter that forks Python stages: start in ~1 ms, not ~60 ms.

Command stages do not come here: ``subprocess`` starts them as fast (``posix_spawn``), and a
fork server would only add a round trip.

The local launcher starts one fork server per run (``python -m blut_core.forkserver FD``)
and talks to it over a socket with JSON lines:

- driver → server ``{"op": "spawn", "id", "context", "cwd", "env", "stdout", "stderr",
  "join", "exit_file"}``: the server hands the request to a *spare* — a child it forked
  beforehand, waiting on a pipe — answers ``{"op": "spawned", "id", "pid"}`` at once, then
  forks the next spare; so the driver never waits for a fork.
- the child first puts itself in the stage's memory cage (``join``: cgroup.procs,
  rlimit), then redirects its output, takes its environment and runs the stage, so nothing
  of the stage ever runs outside its cap. A request without ``join`` (``"hold": true``) gets
  a fresh fork that waits until the driver has caged it (``adopt``) and sends
  ``{"op": "go", "pid"}``.
- server → driver ``{"op": "exit", "pid", "returncode"}`` when a child ends. A child that
  ends normally also writes its return code to ``exit_file`` just before it exits, so the
  driver, woken by the child's pidfd, need not wait for the server's notice.

Children are plain forks of the server: modules the server has imported (blut's runner,
and each stage module after its first use) are shared, so a no-op stage costs a fork.
When the driver goes away (EOF), the server kills its children's process groups and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any


def _child(go_fd: int, req: dict[str, Any], sock: socket.socket) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        sock.close()
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if go_fd >= 0:
            if os.read(go_fd, 1) != b"g":  # the driver died before saying go
                os._exit(1)
            os.close(go_fd)
        _join(req.get("join") or {})
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        from blut_core import runner

        code = runner.main([req["context"]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        exit_file = req.get("exit_file")
        if exit_file:  # lets the driver learn the code without asking the server
            with contextlib.suppress(OSError):
                fd = os.open(str(exit_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, str(code).encode())
                os.close(fd)
        os._exit(code)


def _join(spec: dict[str, Any]) -> None:
    """Put this process under its stage's cap (see ``Cage.join_spec``)."""
    procs = spec.get("cgroup_procs")
    if procs:
        fd = os.open(str(procs), os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    limit = spec.get("rlimit_as")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


class _Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.waiting: dict[int, int] = {}   # pid -> write end of its go pipe
        self.children: set[int] = set()
        self.exit_files: dict[int, str] = {}
        self.spare: tuple[int, int] | None = None  # (pid, request pipe) of a waiting fork

    def send(self, msg: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the driver is gone: shutdown follows
            self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _fork_spare(self) -> None:
        """Fork a child that waits for its request, so the next spawn costs no fork."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
            if not data:  # dropped unused: the server is done with it
                os._exit(0)
            _child(-1, json.loads(data), self.sock)
        os.close(r)
        self.spare = (pid, w)
        self.children.add(pid)

    def _drop_spare(self) -> None:
        if self.spare is not None:
            os.close(self.spare[1])  # it reads end-of-file and exits
            self.spare = None

    def spawn(self, req: dict[str, Any]) -> None:
        target = req.get("preload")
        if target and str(target) not in sys.modules:  # import it here once; forks share it
            with contextlib.suppress(Exception):
                __import__(str(target))
            self._drop_spare()  # the spare was forked before the module was here
        hold = bool(req.get("hold"))
        if not hold:
            if self.spare is None:
                self._fork_spare()
            assert self.spare is not None
            pid, w = self.spare
            self.spare = None
            if req.get("exit_file"):
                self.exit_files[pid] = str(req["exit_file"])
            with contextlib.suppress(OSError):
                os.write(w, json.dumps(req).encode())
            os.close(w)
            self.send({"op": "spawned", "id": req["id"], "pid": pid})
            self._fork_spare()  # ready for the next request
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            _child(r, req, self.sock)
        os.close(r)
        self.waiting[pid] = w
        self.children.add(pid)
        if req.get("exit_file"):
            self.exit_files[pid] = str(req["exit_file"])
        self.send({"op": "spawned", "id": req["id"], "pid": pid})

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
            self.children.discard(pid)
            w = self.waiting.pop(pid, None)
            if w is not None:
                os.close(w)
            code = os.waitstatus_to_exitcode(status)
            exit_file = self.exit_files.pop(pid, None)
            if exit_file:  # the authoritative code, also for commands and killed children
                with contextlib.suppress(OSError), open(exit_file, "w", encoding="ascii") as fh:
                    fh.write(str(code))
            self.send({"op": "exit", "pid": pid, "returncode": code})

    def handle(self, line: bytes) -> None:
        req = json.loads(line)
        op = req.get("op")
        if op == "spawn":
            self.spawn(req)
        elif op == "go":
            self.go(int(req["pid"]))

    def shutdown(self) -> None:
        self._drop_spare()
        for pid in list(self.waiting):
            self.go(pid)
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def serve(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "sock")
        sel.register(rfd, selectors.EVENT_READ, "signal")
        try:
            while True:
                for key, _ in sel.select():
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


class ForkClient:
    """The driver's end: start the server, spawn stages, learn how they ended."""

    def __init__(self, env: dict[str, str]) -> None:
        import subprocess

        mine, theirs = socket.socketpair()
        self.sock = mine
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blut_core.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.buf = b""
        self.exited: dict[int, int] = {}
        self._next = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def _send(self, msg: dict[str, Any]) -> None:
        self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _read(self, timeout: float | None) -> list[dict[str, Any]]:
        """Messages that arrive within ``timeout`` (``None``: wait for at least one)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return []
        finally:
            self.sock.settimeout(None)
        if not data:
            raise ConnectionError("the fork server stopped")
        self.buf += data
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("op") == "exit":
                self.exited[int(msg["pid"])] = int(msg["returncode"])
            out.append(msg)
        return out

    def spawn(self, *, context: str, cwd: str, env: dict[str, str], stdout: str,
              stderr: str, preload: str | None, join: dict[str, Any] | None,
              exit_file: str | None = None) -> int:
        """Fork a Python stage and return its pid.

        With ``join`` the child puts itself under its cap and runs at once; without, it
        waits for :meth:`go` (the caller puts it under its cap first).
        """
        self._next += 1
        ident = self._next
        self._send({"op": "spawn", "id": ident, "context": context, "cwd": cwd, "env": env,
                    "stdout": stdout, "stderr": stderr, "preload": preload, "join": join,
                    "hold": join is None, "exit_file": exit_file})
        while True:
            for msg in self._read(None):
                if msg.get("op") == "spawned" and msg.get("id") == ident:
                    return int(msg["pid"])

    def go(self, pid: int) -> None:
        self._send({"op": "go", "pid": pid})

    def drain(self) -> None:
        """Take in exit notices that have arrived, without waiting."""
        while self._read(0.0):
            pass

    def wait_exit(self, pid: int, timeout: float) -> int | None:
        """The return code of ``pid``, waiting up to ``timeout`` for the notice."""
        import time

        deadline = time.monotonic() + timeout
        while pid not in self.exited:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._read(left)
        return self.exited[pid]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[0]))
    # Import what every stage needs before the first fork.
    import blut_core.runner
    import blut_core.stagectx  # noqa: F401

    _Server(sock).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
