"""A pre-imported interpreter that forks Python stages: start in ~1 ms, not ~60 ms.

Command stages do not come here: ``subprocess`` starts them as fast (``posix_spawn``), and a
fork server would only add a round trip.

The local launcher starts one fork server per run (``python -m blut_core.forkserver FD``)
and talks to it over a socket with JSON lines:

- server → driver ``{"op": "spare", "pid"}`` whenever it has forked a *spare*: a child
  that waits on a pipe for its request, already the leader of its own session. It keeps
  ``SPARES`` of them, so that stages started in a burst do not wait for forks either;
- driver → server ``{"op": "spawn", "spare": PID, "context", "cwd", "env", "stdout",
  "stderr", "join", "exit_file"}``: the server hands the request to that spare and forks
  another. ``env`` holds only what differs from the server's own environment (``None``:
  unset). The driver knew the pid beforehand, so it neither waits for a fork nor for an
  answer: a spawn costs it one message.
- a request that must import a new stage module into the server first (``preload``), or
  without ``join``, names no spare but an ``id`` and is answered ``{"op": "spawned", "id",
  "pid"}``; spares forked before the import are dropped (``{"op": "dropped", "pid"}``).
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
import gc
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

SPARES = 2  # forks kept waiting for a request

def _child(go_fd: int, req: dict[str, Any], sock: socket.socket) -> None:
    """Runs in the forked child; never returns."""
    code = 1
    try:
        sock.close()
        if os.getsid(0) != os.getpid():
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
        for key, value in req["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
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
        self.spares: dict[int, int] = {}  # pid -> request pipe of each waiting fork, oldest first
        self.preloaded: set[str] = set()  # stage modules asked for (the driver keeps the same)

    def send(self, msg: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the driver is gone: shutdown follows
            self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _fill_spares(self) -> None:
        while len(self.spares) < SPARES:
            self._fork_spare()

    def _fork_spare(self) -> None:
        """Fork a child that waits for its request, so the next spawn costs no fork."""
        r, w = os.pipe()
        gc.freeze()  # forks never scan (and so never copy) the server's objects
        pid = os.fork()
        if pid == 0:
            os.close(w)
            for other in (*self.spares.values(), *self.waiting.values()):
                os.close(other)  # else a sibling would never read end-of-file
            os.setsid()  # a kill of its process group reaches it from the moment it is announced
            data = b""
            while chunk := os.read(r, 65536):
                data += chunk
            if not data:  # dropped unused: the server is done with it
                os._exit(0)
            _child(-1, json.loads(data), self.sock)
        os.close(r)
        self.spares[pid] = w
        self.children.add(pid)
        self.send({"op": "spare", "pid": pid})

    def _drop_spares(self) -> None:
        for pid, w in self.spares.items():
            os.close(w)  # it reads end-of-file and exits
            self.send({"op": "dropped", "pid": pid})
        self.spares.clear()

    def spawn(self, req: dict[str, Any]) -> None:
        target = req.get("preload")
        if target and str(target) not in self.preloaded:  # import it here once; forks share it
            self.preloaded.add(str(target))
            if str(target) not in sys.modules:
                with contextlib.suppress(Exception):
                    __import__(str(target))
                self._drop_spares()  # they were forked before the module was here
        named = req.get("spare")
        if named is not None and named not in self.spares:
            # the driver's view of the spare is wrong (a bug): fail this stage, loudly
            with contextlib.suppress(OSError), open(req["stderr"], "a", encoding="utf-8") as fh:
                fh.write(f"blut: fork server has no spare {named}\n")
            self.send({"op": "exit", "pid": named, "returncode": 1})
            return
        if not req.get("hold"):
            if not self.spares:
                self._fork_spare()
            pid = named if named is not None else next(iter(self.spares))
            w = self.spares.pop(pid)
            if req.get("exit_file"):
                self.exit_files[pid] = str(req["exit_file"])
            with contextlib.suppress(OSError):
                os.write(w, json.dumps(req).encode())
            os.close(w)
            if named is None:
                self.send({"op": "spawned", "id": req["id"], "pid": pid})
            self._fill_spares()  # ready for the next requests
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
        self._drop_spares()
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
        self.spares: list[int] = []  # the server's announced spares, not yet used or dropped
        self.preloaded: set[str] = set()
        self.base_env = dict(env)  # the server's environment: requests send differences

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
            op, pid = msg.get("op"), msg.get("pid")
            if op == "exit":
                self.exited.setdefault(int(pid), int(msg["returncode"]))
            elif op == "spare":
                self.spares.append(int(pid))
            elif op in ("spawned", "dropped") and pid in self.spares:
                self.spares.remove(int(pid))
            out.append(msg)
        return out

    def spawn(self, *, context: str, cwd: str, env: dict[str, str], stdout: str,
              stderr: str, preload: str | None, join: dict[str, Any] | None,
              exit_file: str | None = None) -> int:
        """Fork a Python stage and return its pid.

        With ``join`` the child puts itself under its cap and runs at once; without, it
        waits for :meth:`go` (the caller puts it under its cap first). When the stage's
        module is already in the server, the request goes to the announced spare and this
        returns without waiting for an answer.
        """
        base = self.base_env
        changes: dict[str, str | None] = {k: v for k, v in env.items() if base.get(k) != v}
        changes.update({k: None for k in base if k not in env})
        request = {"op": "spawn", "context": context, "cwd": cwd, "env": changes,
                   "stdout": stdout, "stderr": stderr, "preload": preload, "join": join,
                   "hold": join is None, "exit_file": exit_file}
        if join is not None and (preload is None or preload in self.preloaded):
            while not self.spares:  # announced as soon as the server has forked them
                self._read(None)
            pid = self.spares.pop(0)
            self._send({**request, "spare": pid})
            return pid
        if preload:
            self.preloaded.add(preload)
        self._next += 1
        ident = self._next
        self._send({**request, "id": ident})
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

    server = _Server(sock)
    server._fill_spares()  # the first requests cost no fork either
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
