"""W2 for doit: a chain of N dependent no-op shell stages (each needs the previous target)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

N = int(os.environ.get("PB_N", "50"))
DOIT_CONFIG = {"verbosity": 0, "reporter": "executed-only"}


def _touch(targets: list[str]) -> None:
    for t in targets:
        Path(t).touch()


def task_link() -> Iterator[dict[str, Any]]:
    Path("chain").mkdir(exist_ok=True)
    for i in range(N):
        yield {
            "name": str(i),
            "actions": ["true", _touch],
            "file_dep": [f"chain/{i - 1}.done"] if i else [],
            "targets": [f"chain/{i}.done"],
            "uptodate": [True],
        }
