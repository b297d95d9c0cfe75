"""The default sweep on a small box: admission right-sizes the feature pool, a codec waits for
memory, and both the progress lines and the run's summary say so.

``blut run signal:sweep`` runs inside a 3 GiB memory cgroup of its own, which blut's probe
reads as the box, so the recipe sizes its defaults (the pool's ``prefetch``, the large
codebook's ``batch``) from that box exactly as it does from a whole machine, and the stages
really hold what they declare. Nothing outside a stage may be OOM-killed in the box.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from blut_core import App
from blut_core.testing import declared_peaks, in_box, memory_box, oom_kills

pytestmark = pytest.mark.blut(cookbooks=["signal"])

BOX = 3 << 30
BIG = "train-w32s12t8-vq8192"


@pytest.fixture
def run_in_box(tmp_path: Path, blut_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(box: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUT_")}
        env.update(BLUT_HOME=str(blut_home), BLUT_NO_STALE_CHECK="1",
                   BLUT_LEDGER=str(tmp_path / "ledger" / "ledger.json"))
        argv = in_box(box, [sys.executable, "-m", "blut_core", *args])
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)

    return run


def test_on_a_small_box_the_pool_is_right_sized_and_a_codec_waits(
        run_in_box: Callable[..., subprocess.CompletedProcess[str]], app: App) -> None:
    with memory_box(BOX, name="blut-signal-box") as box:
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
