"""Scratch virtualenvs for the peers, pinned by ``requirements/<peer>.txt``, made on first use.

Each venv lives in /tmp/blut-bench-venvs/<peer>-<short hash of its pin file> (the floor's has
no pins: its hash is of the interpreter's version), so that a changed pin file gets a new venv
and an unchanged one is reused. A venv is complete once its ``.ok`` marker exists.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
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
                          f" {last[:200]}; its rows are skipped")
    (v / ".ok").touch()
    return v / "bin", ""


if __name__ == "__main__":
    for name in sys.argv[1:] or ["floor", "doit", "dask"]:
        print(name, *ensure(name))
