"""What a fork-server worker does with one request (see :mod:`blut_plugins.local.forkserver`).

In this order, so that nothing of the stage runs outside its cap: it enters the stage's cage
(``join``), makes the stage's directories and writes its files (``dirs``, ``files``), opens its
logs, takes its environment and working directory, and runs the Python stage in itself or
starts the command with ``posix_spawn``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any


def run_request(req: dict[str, Any], base_env: dict[str, str]) -> int:
    """Run one request in this process and return its code (commands and hold: see _child)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _join(req.get("join") or {})
        _prepare(req)
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
        if os.environ != base_env:  # a reused worker: back to the server's environment first
            os.environ.clear()
            os.environ.update(base_env)
        for key, value in req["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
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


def prepare_job(dirs: Sequence[str], files: Sequence[Sequence[str]]) -> None:
    """Make ``dirs`` and write ``files`` (path, text); a file that could not be written
    whole is removed again (the driver then tries it, and names a full disk)."""
    for path in dirs:
        os.makedirs(path, exist_ok=True)
    for path, text in files:
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise


def _prepare(req: dict[str, Any]) -> None:
    """Make the request's directories and write its files (the attempt's own directory and
    context file among them, in a new run), in the stage's cage, before its logs open there."""
    try:
        prepare_job(req.get("dirs") or (), req.get("files") or ())
    except OSError as exc:  # the logs cannot open either: say it once, where the driver's output goes
        os.write(2, f"blut: cannot prepare {exc.filename or 'the attempt directory'}: "
                    f"{exc.strerror}\n".encode())
        raise SystemExit(1) from None


def _command(argv: list[str]) -> int:
    """Start a command stage in this process's group and cgroup, wait for it, return its code.

    The worker ignores SIGTERM and SIGINT meanwhile (the command gets them, as the group's
    member, and decides), so that a soft timeout ends with the command's own exit.
    """
    import errno

    restore = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            found = find_program(argv[0])
            spawn = os.posix_spawn if found else os.posix_spawnp
            pid = spawn(found or argv[0], argv, dict(os.environ), setsigdef=(
                signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP))
        except OSError as exc:
            os.write(2, f"blut: cannot start {argv[0]!r}: {exc.strerror}\n".encode())
            return 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        for sig, handler in restore.items():
            signal.signal(sig, handler)


def find_program(name: str) -> str | None:
    """Where ``posix_spawnp`` would find the command ``name`` (``shutil.which``: the first
    executable file of that name in ``PATH``), or ``None`` for a name with a ``/`` or one
    found nowhere: ``posix_spawnp`` then starts it or says why not, as before.

    ``posix_spawnp`` finds it by trying ``execve`` in each folder in turn; a failed
    ``execve`` costs more than an ``access`` (about 0.07 ms a stage with eight folders
    before ``/usr/bin``, measured).
    """
    if "/" in name or not name:
        return None
    import shutil

    return shutil.which(name)


def write_pid(procs: str) -> None:
    write_text(procs, str(os.getpid()))


def write_text(path: str, value: str) -> None:
    """Write ``value`` to a cgroup control file in one ``write`` (raises ``OSError``)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _join(spec: dict[str, Any]) -> None:
    """Put this process under its stage's cap (see ``Cage.join_spec``); first make the cage
    when the spec says how (``make``, ``write``: ``CgroupCage.make_spec``)."""
    if spec.get("make"):
        _make(str(spec["make"]), spec.get("write") or ())
    procs = spec.get("cgroup_procs")
    if procs:
        write_pid(str(procs))
    limit = spec.get("rlimit_as")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def _make(path: str, writes: Sequence[Sequence[Any]]) -> None:
    """Create the stage's cgroup and write its cap (``[name, value, required]``: its control
    files, in order), while this process is still outside it; a stage whose cage cannot be
    made or capped does not run (the driver removes what was made)."""
    try:
        os.mkdir(path)
        for name, value, required in writes:
            try:
                write_text(f"{path}/{name}", str(value))
            except OSError:
                if required:
                    raise
    except OSError as exc:
        os.write(2, f"blut: cannot make the stage's cgroup {exc.filename or path}: {exc.strerror}"
                    f" (set BLUT_CONTAINMENT to another backend)\n".encode())
        raise SystemExit(1) from None
