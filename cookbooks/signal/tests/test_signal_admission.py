"""The default sweep on a small box: admission right-sizes the feature pool, a codec waits for
memory, and both the progress lines and the run's summary say so.

``blut run signal:sweep`` runs inside a 3 GiB memory cgroup of its own, which blut's probe
reads as the box, so the recipe sizes its defaults (the pool's ``prefetch``, the large
codebook's ``batch``) from that box exactly as it does from a whole machine, and the stages
really hold what they declare. Nothing outside a stage may be OOM-killed in the box.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blut_core import App
from blut_core.broker import own_memory_cgroup, procs, read_keyed
from blut_core.testing import declared_peaks

pytestmark = pytest.mark.blut(cookbooks=["signal"])

BOX = 3 << 30
BIG = "train-w32s12t8-vq8192"
LIMITS = {1: ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"), 2: ("memory.max", "memory.swap.max")}


def _remove(path: Path) -> None:
    """Kill what is left in ``path`` and below it, then remove the directories, deepest first."""
    dirs = sorted((Path(d) for d, _, _ in os.walk(path)), key=lambda d: len(d.parts), reverse=True)
    for d in dirs:
        deadline = time.monotonic() + 5
        while procs(str(d)) and time.monotonic() < deadline:
            for pid in procs(str(d)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        while time.monotonic() < deadline:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


@contextlib.contextmanager
def memory_box(limit: int) -> Iterator[Path]:
    """A memory cgroup under this process's own, limited to ``limit`` bytes without swap."""
    own = own_memory_cgroup()
    if own is None or not os.access(own[1], os.W_OK):
        pytest.skip("no writable memory cgroup to make a box in")
    version, base = own
    box = Path(base, f"blut-signal-box-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        box.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup under {base}: {exc.strerror}")
    try:
        limit_file, swap_file = LIMITS[version]
        (box / limit_file).write_text(str(limit))
        with contextlib.suppress(OSError):
            (box / swap_file).write_text(str(limit) if version == 1 else "0")
        if version == 2:
            with contextlib.suppress(OSError):
                (box / "cgroup.subtree_control").write_text("+memory")
        yield box
    finally:
        _remove(box)


def oom_kills(box: Path) -> int:
    """OOM kills the kernel counted in the box itself (a stage's own are in its cage)."""
    for name in ("memory.oom_control", "memory.events"):
        count = read_keyed(str(box / name)).get("oom_kill")
        if count is not None:
            return count
    return 0


@pytest.fixture
def run_in_box(tmp_path: Path, blut_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(box: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUT_")}
        env.update(BLUT_HOME=str(blut_home), BLUT_NO_STALE_CHECK="1",
                   BLUT_LEDGER=str(tmp_path / "ledger" / "ledger.json"))
        argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(box / "cgroup.procs"),
                sys.executable, "-m", "blut_core", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)

    return run


def test_on_a_small_box_the_pool_is_right_sized_and_a_codec_waits(
        run_in_box: Callable[..., subprocess.CompletedProcess[str]], app: App) -> None:
    with memory_box(BOX) as box:
        done = run_in_box(box, "run", "signal:sweep", "-p", "signal.duration_s=240")
        killed = oom_kills(box)
    assert done.returncode == 0, done.stdout + done.stderr
    assert killed == 0
    out, progress = done.stdout, done.stderr
    # the summary: which stage was right-sized, and how, and which waited, for how long
    sized = re.search(r"^  right-sized +features: workers 3 → ([12]) to fit .* free \(asked for .*\)$",
                      out, re.M)
    assert sized, out
    assert re.search(rf"^  waited +{BIG}: [0-9.]+s for memory$", out, re.M), out
    assert re.search(r"^ok: 19 ran, 0 cached, 0 failed in ", out, re.M), out
    # progress said so as it happened
    assert re.search(r"running +features \(cap [^;]*; right-sized: workers 3 → [12] ", progress), progress
    assert re.search(rf"waiting +{BIG} \(", progress), progress
    assert re.search(rf"running +{BIG} \(cap [^;]*; waited [0-9.]+s for memory\)", progress), progress
    # what the stages held is what they declared (never more), as blut measured it
    run_dir = Path(re.search(r"^dir (.*)$", out, re.M).group(1))  # type: ignore[union-attr]
    checks = {c.stage: c for c in declared_peaks(app, run_dir) if c.state == "ok"}
    assert checks["features"].drivers["workers"] == int(sized.group(1))
    for c in checks.values():
        assert c.peak_bytes is not None and c.declared_bytes is not None
        assert c.peak_bytes <= c.declared_bytes, (c.stage, c.peak_bytes, c.declared_bytes)
    # the pool and the large codebook really spent what made them wait: hundreds of MiB each
    assert checks["features"].peak_bytes > 600 << 20  # type: ignore[operator]
    assert checks[BIG].peak_bytes > 500 << 20  # type: ignore[operator]
    results = json.loads((run_dir / "stages" / "report" / "out" / "results.json").read_text())
    assert len(results) == 8
