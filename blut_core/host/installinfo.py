"""Where this blut was installed from: ``--version`` with the commit, and the stale warning.

When blut is installed from a git checkout (editable or not), ``blut --version`` prints
``VERSION+COMMIT[-dirty]``. Any command warns, in one line, when the installed metadata is
older than the checkout: the "pulled but forgot to reinstall" trap, which otherwise shows up
as missing plugins or old code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Protocol

from blut_core._version import __version__

DISTRIBUTION = "blut"


class Installed(Protocol):
    """What is read of an installed distribution: an ``importlib.metadata.PathDistribution``,
    or the :class:`DistInfo` that :func:`_dist` finds without importing importlib.metadata."""

    _path: Path

    def read_text(self, filename: str) -> str | None: ...


class DistInfo:
    """A ``NAME-VERSION.dist-info`` (or ``.egg-info``) directory found on ``sys.path``."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def read_text(self, filename: str) -> str | None:
        try:
            return (self._path / filename).read_text(encoding="utf-8")
        except OSError:
            return None


def find_dist_info(name: str, path: list[str] | None = None) -> Path | None:
    """The metadata directory of distribution ``name``: the first on ``sys.path``, as
    ``importlib.metadata.distribution`` finds it, without importing importlib.metadata (and
    email, zipfile, csv with it: ~20 ms of every ``blut --version``)."""
    want = name.lower().replace("-", "_").replace(".", "_")
    for entry in sys.path if path is None else path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for found in names:
            if not found.endswith((".dist-info", ".egg-info")):
                continue
            stem = found.rsplit(".", 1)[0].split("-", 1)[0]
            if stem.lower().replace("-", "_").replace(".", "_") == want:
                return Path(entry or ".") / found
    return None


def _dist() -> Installed | None:
    found = find_dist_info(DISTRIBUTION)
    return None if found is None else DistInfo(found)


def source_checkout(dist: Installed | None = None) -> tuple[Path, bool] | None:
    """(checkout directory, editable?) when installed from a local git checkout."""
    dist = dist or _dist()
    if dist is None:
        return None
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    url = str(info.get("url", ""))
    if not url.startswith("file://"):
        return None
    path = url.removeprefix("file://")
    if "%" in path:
        from urllib.parse import unquote

        path = unquote(path)
    src = Path(path)
    if not (src / ".git").exists():
        return None
    return src, bool(info.get("dir_info", {}).get("editable"))


def describe_version() -> str:
    """``0.1.0``, or ``0.1.0+abc1234[-dirty]`` from a git checkout."""
    found = source_checkout()
    where = found[0] if found else Path(__file__).resolve().parent.parent
    if not (where / ".git").exists():
        return __version__
    import subprocess

    try:  # one git command: the commit (``# branch.oid``) and whether tracked files changed
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain=v2", "--branch",
                                 "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return __version__
    lines = status.stdout.splitlines()
    head = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "")
    if status.returncode != 0 or not all(c in "0123456789abcdef" for c in head) or len(head) < 10:
        return __version__  # not a repository, or no commit yet
    suffix = "-dirty" if any(line and not line.startswith("#") for line in lines) else ""
    return f"{__version__}+{head[:10]}{suffix}"


def stale_warning() -> str | None:
    """One line when the installed blut is older than its source checkout, else ``None``."""
    dist = _dist()
    found = source_checkout(dist)
    if dist is None or found is None:
        return None
    src, editable = found
    meta_path = getattr(dist, "_path", None)  # the dist-info directory
    if meta_path is None:
        return None
    try:
        installed = (Path(meta_path) / "METADATA").stat().st_mtime
        if editable:
            changed = (src / "pyproject.toml").stat().st_mtime
            if changed > installed + 1:
                return (f"warning: {src / 'pyproject.toml'} changed after blut was installed "
                        f"(plugins or dependencies may be missing); run: pip install -e {src}")
            return None
        newest = max(_mtime(p) for p in _head_files(src))
    except OSError:
        return None
    if newest > installed + 1:
        return (f"warning: the installed blut is older than its checkout {src}; "
                f"run: pip install {src}")
    return None


def _head_files(src: Path) -> list[Path]:
    git = src / ".git"
    files = [git / "HEAD"]
    try:
        ref = (git / "HEAD").read_text().strip()
    except OSError:
        return files
    if ref.startswith("ref: "):
        files.append(git / ref[5:])
    return files


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
