"""Where this blut was installed from: ``--version`` with the commit, and the stale warning.

When blut is installed from a git checkout (editable or not), ``blut --version`` prints
``VERSION+COMMIT[-dirty]``. Any command warns, in one line, when the installed metadata is
older than the checkout: the "pulled but forgot to reinstall" trap, which otherwise shows up
as missing plugins or old code.
"""

from __future__ import annotations

import json
import os
from importlib import metadata as md
from pathlib import Path

from blut_core._version import __version__

DISTRIBUTION = "blut"


def _dist() -> md.Distribution | None:
    try:
        return md.distribution(DISTRIBUTION)
    except md.PackageNotFoundError:
        return None


def source_checkout(dist: md.Distribution | None = None) -> tuple[Path, bool] | None:
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

    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short=10", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return __version__
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return __version__
    suffix = "-dirty" if dirty.stdout.strip() else ""
    return f"{__version__}+{head.stdout.strip()}{suffix}"


def stale_warning() -> str | None:
    """One line when the installed blut is older than its source checkout, else ``None``."""
    dist = _dist()
    found = source_checkout(dist)
    if dist is None or found is None:
        return None
    src, editable = found
    meta_path = getattr(dist, "_path", None)  # the dist-info directory (PathDistribution)
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
