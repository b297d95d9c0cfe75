"""Cgroup control files as a stage's cage writes them; reads come from :mod:`blut_core.broker`."""

from __future__ import annotations

import os

from blut_core.broker import own_dir, procs, read_int, read_keyed, read_text

__all__ = ["own_dir", "procs", "read_int", "read_keyed", "read_text", "v2_has_memory", "write_text"]

def write_text(path: str, value: str) -> None:
    """Write ``value`` to a cgroup control file in one ``write`` (raises ``OSError``)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def v2_has_memory(path: str) -> bool:
    """Whether the memory controller is enabled for cgroups under ``path``."""
    return "memory" in (read_text(os.path.join(path, "cgroup.subtree_control")) or "").split()
