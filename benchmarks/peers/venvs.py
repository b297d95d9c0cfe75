"""Scratch virtualenvs for the peers and for blut, pinned by ``requirements/<peer>.txt``, made on
first use.

Each venv lives in /tmp/blut-bench-venvs/<peer>-<short hash of its pin file> (the floor's has
no pins: its hash is of the interpreter's version), so that a changed pin file gets a new venv
and an unchanged one is reused. A venv is complete once its ``.ok`` marker exists.

blut's venv holds only its pinned dependencies (and hatchling, to build it): the checkout being
measured is built as a wheel and installed into a site folder of each run
(:func:`install_blut`), so that the venv stays the same for every run and concurrent runs of
different checkouts do not reinstall blut under each other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENVS = Path("/tmp/blut-bench-venvs")


def pins(peer: str) -> Path:
    return HERE / "requirements" / f"{peer}.txt"


def venv_dir(peer: str) -> Path:
    source = pins(peer).read_bytes() if peer != "floor" else sys.version.encode()
    return VENVS / f"{peer}-{hashlib.sha256(source).hexdigest()[:10]}"


def ensure(peer: str) -> tuple[Path | None, str]:
    """The venv's bin directory (made if missing), or None and one line saying why not."""
    v = venv_dir(peer)
    if (v / ".ok").exists():
        return v / "bin", ""
    print(f"bench_peers: creating the {peer} venv {v} (once)", file=sys.stderr, flush=True)
    shutil.rmtree(v, ignore_errors=True)
    v.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(v)], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"{peer}: python3 -m venv failed: {made.stderr.strip().splitlines()[-1:]}"
    if peer != "floor":
        got = subprocess.run([str(v / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", "--retries", "1", "--timeout", "20",
                              "-r", str(pins(peer))], capture_output=True, text=True)
        if got.returncode != 0:
            shutil.rmtree(v, ignore_errors=True)
            last = (got.stderr.strip().splitlines() or ["(no output)"])[-1]
            return None, (f"{peer}: pip install -r {pins(peer).name} failed (is PyPI reachable?):"
                          f" {last[:200]}")
    (v / ".ok").touch()
    return v / "bin", ""


def install_blut(bin_dir: Path, root: Path, site: Path) -> str:
    """Build ``root`` as a wheel and install it into ``site`` with the venv of ``bin_dir`` (pip
    writes its bytecode, as for the peers' wheels); ``site/bin/blut`` is its console script.

    Offline: no dependencies (the venv has them) and no build isolation (the venv has
    hatchling). Returns "" when installed, else one line saying why not.
    """
    shutil.rmtree(site, ignore_errors=True)
    got = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", "--no-deps", "--no-index",
                          "--no-build-isolation", "--target", str(site), str(root)],
                         capture_output=True, text=True)
    if got.returncode != 0 or not (site / "bin" / "blut").exists():
        lines = [x for x in got.stderr.strip().splitlines() if "is ignored" not in x]
        return (f"blut: building and installing {root} as a wheel failed "
                f"(exit {got.returncode}): {(lines or ['(no output)'])[-1][:200]}")
    # the venv's pins may lag the checkout's dependencies: better said now than as a failed run
    checked = subprocess.run([str(bin_dir / "python"), "-m", "pip", "check",
                              "--disable-pip-version-check"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(site)))
    lacking = [x for x in checked.stdout.splitlines() if x.lower().startswith("blut ")]
    if lacking:
        return (f"blut: the venv lacks what {root} needs ({lacking[0][:160]}); pin it in "
                f"{pins('blut')}")
    return ""


def peer_env() -> dict[str, str]:
    """The environment of the peers' commands: this one without what blut's runs add."""
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONPYCACHEPREFIX", "PB_N"):
        env.pop(k, None)
    return env


@dataclass
class Blut:
    """How the benchmark runs blut: its command, the environment of its commands, and how it
    is installed (``venv``: the scratch venv's; None: this machine's interpreter)."""

    argv: list[str]
    env: dict[str, str]
    venv: Path | None = None
    site: Path | None = None


def _cookbook(site: Path) -> Path:
    """``site`` with a dist-info that names the benchmark cookbook (it is not installed)."""
    from blut_core.testing import installed_distribution

    return installed_distribution(site, "blut-pbbench", "0.0",
                                  {"blut.cookbooks": {"pbbench": "benchmarks.peers.pbbench"}})


def host_blut(work: Path) -> Blut:
    """blut as this machine runs it: its own interpreter, the editable install of ROOT (ROOT on
    PYTHONPATH, so that a copy of the tree measures itself), bytecode in the work folder (this
    machine sets PYTHONDONTWRITEBYTECODE=1: an editable checkout would compile every module in
    every process)."""
    from benchmarks._util import blut_exe

    env = peer_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({"PYTHONPATH": os.pathsep.join([str(_cookbook(work / "site-host")), str(ROOT)]),
                "PYTHONPYCACHEPREFIX": str(work / "pycache"), "BLUT_NO_STALE_CHECK": "1"})
    return Blut(argv=blut_exe(), env=env)


def venv_blut(work: Path, bin_dir: Path, root: Path = ROOT) -> tuple[Blut | None, str]:
    """blut as the peers are run: the scratch venv's interpreter, ``root`` built as a wheel and
    installed into ``work/site`` with the benchmark cookbook beside it (only the ``benchmarks``
    package's cookbook, not the checkout: ``root`` on PYTHONPATH would shadow the installed
    blut_core). None and one line when that fails."""
    site = work / "site"
    why = install_blut(bin_dir, root, site)
    if why:
        return None, why
    for rel in ("benchmarks/__init__.py", "benchmarks/peers/__init__.py",
                "benchmarks/peers/pbbench.py"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, site / rel)
    compiled = subprocess.run([str(bin_dir / "python"), "-m", "compileall", "-q",
                               str(site / "benchmarks")], capture_output=True, text=True)
    if compiled.returncode != 0:
        return None, f"blut: compiling the benchmark cookbook failed: {compiled.stdout[-200:]}"
    env = dict(peer_env(), PYTHONPATH=str(_cookbook(site)), BLUT_NO_STALE_CHECK="1")
    return Blut(argv=[str(site / "bin" / "blut")], env=env, venv=bin_dir.parent, site=site), ""


def choose_blut(work: Path, bin_dir: Path | None, why: str, root: Path = ROOT) -> Blut:
    """The venv's blut (``bin_dir``, or None and ``why`` from :func:`ensure`), else this
    machine's, with one printed line saying why."""
    if bin_dir is not None:
        got, why = venv_blut(work, bin_dir, root)
        if got is not None:
            return got
    print(f"bench_peers: {why}; blut runs the old way instead, on this machine's interpreter and "
          "its editable install (every blut process pays its site-packages' start-up)")
    return host_blut(work)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["floor", "doit", "dask", "blut"]:
        print(name, *ensure(name))
