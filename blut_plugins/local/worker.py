"""A fork-server worker's side: run each request it is handed, and put its process back
between stages (the protocol is :mod:`blut_plugins.local.forkserver`'s).

A worker is a fork of the server, waiting on a pipe. For each request it enters the stage's
cage, redirects its output, makes the attempt's directories, takes the stage's environment
and runs the stage (a Python stage in this process, a command with ``posix_spawn``). When a
stage ended cleanly the worker may serve another: it leaves the stage's cgroup and undoes
what a stage commonly leaves in a process (see :func:`serve_requests`). Between two stages only
what differs is written back: the few variables that changed, the signal handlers not at
their default, standard input if it is no longer ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import IO, Any

REUSE_MAX_STAGES = 1000  # stages one worker runs before it is replaced by a fresh fork
REUSE_MAX_GROWTH = 64 << 20  # resident bytes a worker may gain over its life and stay


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    try:
        return int(os.read(fd, 256).split()[1]) * _PAGE
    finally:
        os.close(fd)


def serve_requests(requests: IO[bytes], back: int) -> None:
    """An idle fork: run each request it is handed, reused while it stays clean; never returns."""
    base_env = _Environ()
    base_logging = _logging_state()
    born = _rss()
    me = os.getpid()
    done = 0
    while True:
        line = requests.readline()
        if not line:  # dropped or retired by the server, or the server is gone
            os._exit(0)
        req = json.loads(line)
        code = _run(req, base_env)
        if os.getpid() != me:  # a process the stage forked returned here: it is not a worker
            os._exit(code if 0 <= code < 256 else 1)
        done += 1
        home = (req.get("join") or {}).get("home_procs")
        import threading

        keep = bool(req.get("reuse") and home and code == 0 and threading.active_count() == 1
                    and done < REUSE_MAX_STAGES and _rss() - born < REUSE_MAX_GROWTH)
        if keep:
            try:
                _write_pid(str(home))  # out of the stage's cgroup: its cage can be removed
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


class _Environ:
    """The server's environment, put back under a stage's by writing only what differs.

    Clearing ``os.environ`` and filling it again costs a ``putenv`` per variable per stage;
    between two stages only the few the driver sets (``BLUT_STAGE``, ...) and what the
    stage itself changed differ. Works on the encoded variables (``os.environb``), so
    nothing is decoded either.
    """

    def __init__(self) -> None:
        self.base = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}

    def apply(self, changes: dict[str, str | None]) -> None:
        """Make the environment the server's with ``changes`` (``None``: unset)."""
        wanted = dict(self.base)
        for key, value in changes.items():
            if value is None:
                wanted.pop(os.fsencode(key), None)
            else:
                wanted[os.fsencode(key)] = os.fsencode(value)
        env = os.environb
        data = getattr(os.environ, "_data", None)  # CPython's encoded variables
        current: dict[bytes, bytes] = data if isinstance(data, dict) else dict(env)
        if current == wanted:
            return
        for name in [k for k in current if k not in wanted]:
            del env[name]
        for name, text in wanted.items():
            if current.get(name) != text:
                env[name] = text


def _run(req: dict[str, Any], base_env: _Environ) -> int:
    """Run one request in this process and return its code (commands and hold: see run_held)."""
    code = 1
    try:
        _default_signals()
        _join(req.get("join") or {})
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        _null_stdin()
        for path in req.get("dirs") or ():
            _mkdir(path)
        os.chdir(req["cwd"])
        base_env.apply(req["env"])  # a reused worker: the server's environment first
        if req.get("argv"):
            code = _command(list(req["argv"]))
        else:
            from blut_core.process import run_stage

            code = run_stage(req["context"])
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
        signal.alarm(0)
    return code


_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1,
            signal.SIGUSR2, signal.SIGALRM)


def _default_signals() -> None:
    """Default handlers for a stage (SIGINT raises KeyboardInterrupt); a handler already in
    place costs no system call (a reused worker's are, unless its last stage set one)."""
    signal.set_wakeup_fd(-1)
    for sig in _SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _null_stdin() -> None:
    """Make standard input ``/dev/null`` (a reused worker's already is, unless a stage moved it)."""
    try:
        if os.path.samestat(os.fstat(0), _DEVNULL_STAT[0]):
            return
    except (OSError, IndexError):
        pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if not _DEVNULL_STAT:
        _DEVNULL_STAT.append(os.fstat(0))


_DEVNULL_STAT: list[os.stat_result] = []


def _mkdir(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` at the cost of one ``mkdir`` when the parent exists."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def _command(argv: list[str]) -> int:
    """Start a command stage in this process's group and cgroup, wait for it, return its code.

    The worker ignores SIGTERM and SIGINT meanwhile (the command gets them, as the group's
    member, and decides), so that a soft timeout ends with the command's own exit.
    """
    import errno

    restore = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            pid = os.posix_spawnp(argv[0], argv, dict(os.environ), setsigdef=(
                signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP))
        except OSError as exc:
            os.write(2, f"blut: cannot start {argv[0]!r}: {exc.strerror}\n".encode())
            return 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)


def run_held(go_fd: int, req: dict[str, Any]) -> None:
    """A fork for one held request: wait for "go", run it, exit; never returns."""
    if go_fd >= 0:
        if os.read(go_fd, 1) != b"g":  # the driver died before saying go
            os._exit(1)
        os.close(go_fd)
    os._exit(_run(req, _Environ()))


def _write_pid(procs: str) -> None:
    fd = os.open(procs, os.O_WRONLY)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)


def _join(spec: dict[str, Any]) -> None:
    """Put this process under its stage's cap (see ``Cage.join_spec``)."""
    procs = spec.get("cgroup_procs")
    if procs:
        _write_pid(str(procs))
    limit = spec.get("rlimit_as")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
