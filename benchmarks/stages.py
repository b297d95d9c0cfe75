"""No-op stages for benchmarks (module level so stage processes can import them)."""

from __future__ import annotations

from typing import Any


def noop(ctx: Any) -> None:
    return None
