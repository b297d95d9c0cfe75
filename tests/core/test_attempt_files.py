"""An attempt's directory and context file are there before its stage starts, whoever makes them.

In a new run the local launcher makes them where the stage runs (in its worker, or just
before spawning it); elsewhere (a resumed run, a cluster launcher) the driver makes them.
Either way a stage finds ``BLUT_CONTEXT`` naming a complete context file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from importlib import metadata as md
from pathlib import Path
from typing import Any

import attrs
import pytest

from blut_core import CookbookSpec, ExecOptions, Plan, Recipe, Stage, hookimpl
from blut_core.process.spec import prepare_attempt
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.rundir import RunDir
from blut_core.testing import COOKBOOK_GROUP

CTXBOOK = md.EntryPoint(name="ctxbook", value="tests.core.test_attempt_files", group=COOKBOOK_GROUP)


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [CTXBOOK]


COMMANDS = 4  # enough that some start in idle workers and, with the server up, some not
KEEP = 'cp "$BLUT_CONTEXT" "$BLUT_OUT_DIR/context.json"'


def keep_context(ctx: Any) -> None:
    """A Python stage that keeps the context file it was started with."""
    Path(ctx.out_dir, "context.json").write_bytes(Path(os.environ["BLUT_CONTEXT"]).read_bytes())


@attrs.frozen
class Empty:
    pass


def _plan(_: Empty) -> Plan:
    return Plan.of(Stage.call("py", keep_context),
                   *(Stage.command(f"cmd{i}", ["sh", "-c", KEEP]) for i in range(COMMANDS)))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="ctxbook", summary="stages that keep their context file")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="keep", summary="each stage copies its context file", params=Empty,
                 build=_plan)


@pytest.mark.parametrize("forkserver", ["1", "0"])
def test_every_stage_finds_its_context_file_in_its_attempt_directory(
        app, monkeypatch: pytest.MonkeyPatch, forkserver: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BLUT_FORKSERVER", forkserver)
    summary = start_run(app, prepare(app, "ctxbook:keep"), options=ExecOptions(jobs=2))
    assert summary.outcome == "ok", [(o.stage, o.error) for o in summary.stages]
    for name in ["py", *(f"cmd{i}" for i in range(COMMANDS))]:
        adir = summary.run_dir / "stages" / name / "attempts" / "1"
        seen = (summary.run_dir / "stages" / name / "out" / "context.json").read_text()
        assert seen == (adir / "context.json").read_text()  # the file it read is the one kept
        ctx = json.loads(seen)
        assert (ctx["stage"], ctx["attempt"], ctx["run_id"]) == (name, 1, summary.run_id)
        assert ctx["out_dir"] == str(adir / "out.tmp") and ctx["work_dir"] == str(adir / "work")
        assert (adir / "stdout.log").exists() and (adir / "stderr.log").exists()


def test_a_deferred_attempt_is_left_to_the_launcher_and_a_driver_made_one_is_on_disk(
        tmp_path: Path) -> None:
    rundir = RunDir.create(tmp_path / "runs", "r1")
    assert rundir.fresh and not RunDir(rundir.path).fresh  # a directory opened again (resume)
    stage = Stage.command("s", ["true"])
    common: dict[str, Any] = {"cap": None, "knobs": {}, "pythonpath": ""}

    job = prepare_attempt(rundir, "r1", stage, 1, deferred=True, **common)
    adir = rundir.attempt_dir("s", 1)
    assert not (rundir.path / "stages" / "s").exists()  # the driver made nothing
    [(path, text)] = job.files
    assert path == str(adir / "context.json") and json.loads(text)["stage"] == "s"
    assert str(adir / "out.tmp") in job.dirs and job.env["BLUT_CONTEXT"] == path

    job2 = prepare_attempt(rundir, "r1", stage, 2, **common)
    assert job2.files == ()
    ctx2 = json.loads((rundir.attempt_dir("s", 2) / "context.json").read_text())
    assert ctx2["attempt"] == 2


def test_a_full_disk_that_kept_the_launcher_from_writing_stops_the_run_in_one_line(
        tmp_path: Path) -> None:
    """The worker could not write the context file: the driver tries, and names the file."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    import subprocess

    from blut_core.errors import DiskFull
    from blut_core.model.jobs import JobHandle
    from blut_core.run.attempt import Attempt

    fs = tmp_path / "fs"
    fs.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(fs)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        with contextlib.suppress(OSError), open(fs / "filler", "wb") as fh:
            while fh.write(b"\0" * 4096):
                fh.flush()
        adir = fs / "stages" / "s" / "attempts" / "1"
        ctx = str(adir / "context.json")
        attempt = Attempt(stage=Stage.command("s", ["true"]), number=1, dir=adir,
                          tmp_out=adir / "out.tmp", key=None, started=0.0,
                          handle=JobHandle(launcher="local", job_id="1"),
                          files=((ctx, '{"stage": "s"}'),))
        with pytest.raises(DiskFull) as info:
            attempt.write_missing_files()
        assert "no space left to write" in info.value.message and "context.json" in info.value.message
        (fs / "filler").unlink()
        attempt.write_missing_files()  # room again: written, and a second call leaves it be
        assert json.loads(Path(ctx).read_text()) == {"stage": "s"}
        attempt.write_missing_files()
    finally:
        subprocess.run(["umount", "-l", str(fs)], capture_output=True)
