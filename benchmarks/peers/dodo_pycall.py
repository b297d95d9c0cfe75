"""W5 for doit: N independent stages that are Python callables (python-actions), no subprocess."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

N = int(os.environ.get("PB_N", "200"))
DOIT_CONFIG = {"verbosity": 0, "reporter": "executed-only"}


def _noop(i: int) -> bool:
    return True


def task_py() -> Iterator[dict[str, Any]]:
    for i in range(N):
        yield {"name": str(i), "actions": [(_noop, [i])]}
