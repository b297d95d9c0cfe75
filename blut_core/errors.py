"""Errors a user is expected to read: one line, a hint, an exit code, no traceback.

Exit codes (the contract of the ``blut`` command): 0 success, 1 run failed, 2 usage or
configuration error, 3 admission refused, 130 interrupted. Anything that is not a
:class:`BlutError` is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import ClassVar


class BlutError(Exception):
    """An error a user is expected to read. Shown as one line without a traceback."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = tuple(details)

    def render(self) -> str:
        """The text shown on stderr: the message, detail lines, then the hint."""
        lines = [f"Error: {self.message}"]
        lines += [f"  - {d}" for d in self.details]
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(BlutError):
    """Bad input: params, a params file, a plan, an environment variable, a path."""

    exit_code = 2


class PluginError(BlutError):
    """A plugin is missing, broken or misbehaving. Messages name plugin and distribution."""

    exit_code = 2


class PluginConflictError(PluginError):
    """Two plugins provide the same name through one registration hook."""

    def __init__(self, hook: str, name: str, first: str, second: str) -> None:
        super().__init__(
            f"{name!r} is provided twice through {hook}: by {first} and by {second}",
            hint="uninstall one of them, or disable one by plugin name with BLUT_DISABLE_PLUGINS",
        )


class DiskFull(ConfigError):
    """A write failed because its file system is full (or the user's quota is).

    The message names the file, the space the write needed (when known) and what is free
    on that file system; the hint names the file system to free space on.
    """

    def __init__(self, path: str | os.PathLike[str], *, needed: int | None = None,
                 what: str | None = None, hint: str | None = None) -> None:
        self.path = os.fspath(path)
        self.needed = needed
        self.free = free_bytes(self.path)
        mount = mount_point(self.path)
        need = f"it needs {_size(needed)}" if needed else "it needs more space"
        free = "" if self.free is None else f", {_size(self.free)} free on {mount}"
        where = f"for {what} in {self.path}" if what else f"to write {self.path}"
        super().__init__(f"no space left {where}: {need}{free}",
                         hint=hint or f"free space on {mount} (see `df -h {mount}`), "
                                      "or set BLUT_HOME to a directory on another disk")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a file system is full (``ENOSPC``) or a quota is used up."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc).lower()  # errors that carry the OS error as text (shutil's copytree, DuckDB)
    return "no space left on device" in text or "disk quota exceeded" in text


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    probe = os.fspath(path)
    while probe:
        try:
            st = os.statvfs(probe)
        except OSError:
            parent = os.path.dirname(probe)
            if parent == probe:
                return None
            probe = parent
            continue
        return st.f_bavail * st.f_frsize
    return None


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    here = os.path.abspath(os.fspath(path))
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    while not os.path.ismount(here):
        here = os.path.dirname(here)
    return here


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class PlanError(ConfigError):
    """A plan is not a valid DAG (cycle, dangling input, duplicate name)."""


class LauncherError(BlutError):
    """A launcher cannot do what was asked, for a reason the user can fix."""


class AdmissionRefused(BlutError):
    """A stage can never fit this machine's memory."""

    exit_code = 3


class RunFailed(BlutError):
    """A run finished with failed stages (the summary has been printed already)."""

    exit_code = 1


class Interrupted(BlutError):
    """The run was cancelled by the user (Ctrl-C, SIGTERM, ``blut cancel``)."""

    exit_code = 130
