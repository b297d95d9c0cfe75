"""Attempt directories: the layout ``logs``, ``runs show`` and resume read, made with the
fewest ``mkdir`` it allows, and outputs promoted over what an earlier attempt left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blut_core.store.rundir import RunDir


def _mkdirs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = os.mkdir

    def counting(path: str | os.PathLike[str], mode: int = 0o777) -> None:
        made.append(os.fspath(path))
        real(path, mode)

    monkeypatch.setattr(os, "mkdir", counting)
    return made


def test_a_first_attempt_makes_its_three_directories_and_a_retry_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rd = RunDir.begin(tmp_path / "runs", "r1")
    rd.publish(tmp_path / "runs")
    made = _mkdirs(monkeypatch)
    first = rd.new_attempt("train", 1)
    run = tmp_path / "runs" / "r1"
    assert first == run / "stages" / "train" / "attempts" / "1" and first.is_dir()
    assert made == [str(run / "stages" / "train"), str(run / "stages" / "train" / "attempts"),
                    str(first)]
    made.clear()
    second = rd.new_attempt("train", 2)
    assert made == [str(second)] and second == rd.attempt_dir("train", 2)
    assert rd.out_dir("train") == run / "stages" / "train" / "out"
    assert rd.checkpoint_dir("train") == run / "stages" / "train" / "checkpoint"


def test_a_resumed_run_replaces_a_leftover_attempt_directory(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "r2")
    left = rd.new_attempt("s", 1)
    (left / "stdout.log").write_text("from the dead driver\n")
    again = RunDir(rd.path)  # what resume makes of the same directory
    fresh = again.new_attempt("s", 1)
    assert fresh == left and list(fresh.iterdir()) == []
    assert again.new_attempt("t", 1).is_dir()  # a stage the dead driver never reached


def test_promote_replaces_an_earlier_output(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "r3")
    for n, text in ((1, "first"), (2, "second")):
        tmp_out = rd.new_attempt("s", n) / "out.tmp"
        tmp_out.mkdir()
        (tmp_out / "result.txt").write_text(text)
        dest = rd.promote("s", tmp_out)
        assert (dest / "result.txt").read_text() == text and not tmp_out.exists()
    assert sorted(p.name for p in rd.out_dir("s").iterdir()) == ["result.txt"]
    tmp_out = rd.new_attempt("s", 3) / "out.tmp"
    tmp_out.mkdir()
    rd.out_dir("s").rename(tmp_path / "moved")
    rd.out_dir("s").write_text("a file where the output belongs")
    with pytest.raises(OSError):
        rd.promote("s", tmp_out)
    assert tmp_out.is_dir()
