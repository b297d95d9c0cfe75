"""W1 / W4 for doit: N independent no-op shell stages.  doit -f dodo_fanout.py -d WORKDIR -n 2"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

N = int(os.environ.get("PB_N", "200"))
DOIT_CONFIG = {"verbosity": 0, "reporter": "executed-only"}


def _touch(targets: list[str]) -> None:
    for t in targets:
        Path(t).touch()


def task_stage() -> Iterator[dict[str, Any]]:
    Path("fan").mkdir(exist_ok=True)
    for i in range(N):
        yield {
            "name": str(i),
            "actions": ["true", _touch],  # shell action, then mark the target
            "targets": [f"fan/{i}.done"],
            "uptodate": [True],  # up to date while the target exists
        }
