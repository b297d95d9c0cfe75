"""bench_peers' work folders: a cold run's folder is new and empty, what it held is deleted
only after the rounds; the file system they are on is named (the line under the machine's
load), from the mount table: the mount that holds the folder, the deepest one."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.peers.measure import TRASH, empty, file_system, take_out_trash


def test_the_deepest_mount_holding_the_folder_is_named() -> None:
    assert file_system(Path("/proc/self")).startswith(
        "file system of the work folder: proc on proc (mounted at /proc)")


def test_a_folder_on_the_root_file_system_names_a_mount_above_it(tmp_path: Path) -> None:
    line = file_system(tmp_path)
    point = line.split("(mounted at ", 1)[1].split(")", 1)[0]
    assert str(tmp_path).startswith(point.rstrip("/") + "/")
    assert os.path.ismount(point)


def test_a_cold_folder_is_empty_and_what_it_held_goes_only_when_the_trash_is_taken_out(
        tmp_path: Path) -> None:
    folder = tmp_path / "w" / "W1-blut"
    empty(folder)
    (folder / "home").mkdir()
    (folder / "home" / "status.jsonl").write_text("x")
    empty(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    kept = list((folder.parent / TRASH).rglob("status.jsonl"))
    assert len(kept) == 1  # not deleted while the rounds run
    take_out_trash(tmp_path)
    assert not (folder.parent / TRASH).exists() and folder.is_dir()
