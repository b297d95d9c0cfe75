"""Provenance of a run: which code, which machine, which versions."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from blut_core._version import __version__

_NO_GIT: dict[str, Any] = {"commit": None, "dirty": None, "root": None}


def git_state(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the git work tree containing ``path`` (``None`` if none).

    The tree's root is found by looking for ``.git`` upwards; :func:`collect` asks git once
    per work tree (a recipe in blut's own checkout shares blut's).
    """
    root = _root_of(path)
    return dict(_NO_GIT) if root is None else _status_of(_start_status(root), root)


def _work_tree(where: Path) -> Path | None:
    for folder in (where, *where.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return None


def _start_status(root: Path) -> subprocess.Popen[str] | None:
    """``git status`` of ``root``, started (it runs while the rest is gathered).

    Without the index lock git takes to refresh the index (``--no-optional-locks``): a run
    never writes to the user's repository, and a status it stops (a run that ends before it
    is done) cannot leave an ``index.lock`` behind that breaks the next git command there.
    """
    try:
        return subprocess.Popen(["git", "--no-optional-locks", "-C", str(root), "status",
                                 "--porcelain=v2", "--branch", "--untracked-files=no"],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except (OSError, subprocess.SubprocessError):
        return None


def _status_of(proc: subprocess.Popen[str] | None, root: Path) -> dict[str, Any]:
    none = dict(_NO_GIT)
    if proc is None:
        return none
    try:
        out, _ = proc.communicate(timeout=10)
    except (OSError, subprocess.SubprocessError):
        proc.kill()
        proc.wait()
        return none
    lines = out.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if proc.returncode != 0 or commit is None or commit == "(initial)":
        return none
    dirty = any(line and not line.startswith("#") for line in lines)
    return {"commit": commit, "dirty": dirty, "root": str(root)}


def _root_of(path: Path) -> Path | None:
    where = path if path.is_dir() else path.parent
    try:
        return _work_tree(where.resolve())
    except OSError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def platform_text() -> str:
    """What :func:`platform.platform` says (``Linux-6.1.0-18-amd64-x86_64-with-glibc2.36``),
    without the ``uname -p`` process it starts for the processor's name (~6 ms a run): the
    system, release and machine of :func:`os.uname`, and the C library."""
    u = os.uname()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    except (ValueError, OSError):
        libc = ""
    name, _, version = libc.partition(" ")
    if not version:
        name, version = platform.libc_ver()
    parts = [u.sysname, u.release, u.machine] + (["with", name + version] if name else [])
    return "-".join(x.strip().replace(" ", "_") for x in parts if x.strip())


def total_ram() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def gpus() -> list[dict[str, Any]]:
    """Name and memory of NVIDIA GPUs when ``nvidia-smi`` answers; empty otherwise."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        name, _, mem = line.rpartition(",")
        if name:
            try:
                found.append({"name": name.strip(), "memory_bytes": int(mem.strip()) * 1024 * 1024})
            except ValueError:
                continue
    return found


class Gathering:
    """A run's provenance being gathered: each work tree's ``git status`` is started by
    :func:`start` and runs while the run is set up (the broker, the launcher); :meth:`finish`
    collects it. :meth:`close` stops what a run that ended before its set-up never collected.
    """

    def __init__(self, recipe_source: Path | None) -> None:
        self.recipe_source = recipe_source
        self.blut_src = Path(__file__).resolve().parent
        self.roots = {p: _root_of(p) for p in (recipe_source, self.blut_src) if p is not None}
        self.started = {r: _start_status(r) for r in set(self.roots.values()) if r is not None}

    def finish(self, plugins: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything ``provenance.json`` records."""
        described = platform_text()
        states = {r: _status_of(proc, r) for r, proc in self.started.items()}
        self.started = {}

        def state(path: Path) -> dict[str, Any]:
            root = self.roots[path]
            return dict(_NO_GIT) if root is None else dict(states[root])

        return {
            "recipe_git": state(self.recipe_source) if self.recipe_source else None,
            "blut_git": state(self.blut_src),
            "blut_version": __version__,
            "python": sys.version.split()[0],
            "python_executable": sys.executable,
            "platform": described,
            "plugins": plugins,
            "host": socket.gethostname(),
            "cpu_model": cpu_model(),
            "cores": os.cpu_count(),
            "ram_bytes": total_ram(),
            "gpus": gpus(),
            "user": os.environ.get("USER") or os.environ.get("LOGNAME"),
            "argv": sys.argv,
        }

    def close(self) -> None:
        """Stop and reap the ``git status`` of a gathering that was never finished."""
        for proc in self.started.values():
            if proc is not None:
                proc.kill()
                proc.communicate()
        self.started = {}


def start(recipe_source: Path | None) -> Gathering:
    """Start gathering provenance for a recipe defined in ``recipe_source`` (``None``: unknown)."""
    return Gathering(recipe_source)


def collect(recipe_source: Path | None, plugins: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything ``provenance.json`` records, gathered now."""
    return start(recipe_source).finish(plugins)
