"""bench_peers names the file system its work folder is on (the line under the machine's
load), from the mount table: the mount that holds the folder, the deepest one."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.peers.measure import file_system


def test_the_deepest_mount_holding_the_folder_is_named() -> None:
    assert file_system(Path("/proc/self")).startswith(
        "file system of the work folder: proc on proc (mounted at /proc)")


def test_a_folder_on_the_root_file_system_names_a_mount_above_it(tmp_path: Path) -> None:
    line = file_system(tmp_path)
    point = line.split("(mounted at ", 1)[1].split(")", 1)[0]
    assert str(tmp_path).startswith(point.rstrip("/") + "/")
    assert os.path.ismount(point)
