"""How a stage attempt becomes a process: its context file, its environment, its argv.

This is the contract a stage process relies on, whatever launcher starts it:

- ``context.json`` in the attempt directory (named by ``BLUT_CONTEXT``): run id, stage,
  attempt, target, params, inputs, out/work/checkpoint directories, events file, knobs;
- the environment: ``BLUT_CONTEXT``, ``BLUT_RUN_ID``, ``BLUT_STAGE``, ``BLUT_ATTEMPT``,
  ``BLUT_OUT_DIR``, ``BLUT_EVENTS``, ``BLUT_PARAMS`` (JSON), ``BLUT_INPUT_<NAME>`` per input,
  then the stage's own ``env``;
- argv: ``python -m blut_core.process.runner CONTEXT`` for a Python stage; for a command stage its
  argv with ``{out}``, ``{work}``, ``{inputs[NAME]}``, ``{params[KEY]}``, ``{attempt}`` and
  ``{python}`` filled in (checked when the plan was validated);
- reports: JSON lines the stage appends to its events file (``BLUT_EVENTS``), read back by
  :func:`read_events_from`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blut_core.host.interfaces import Launcher
from blut_core.model.jobs import Job
from blut_core.model.stage import Stage
from blut_core.store.rundir import RunDir, write_bytes


def prepare_attempt(rundir: RunDir, run_id: str, stage: Stage, number: int, *,
                    cap: int | None, knobs: Mapping[str, int], pythonpath: str) -> Job:
    """Create attempt ``number`` of ``stage`` on disk and return the job that starts it.

    The attempt's output and scratch directories are the job's ``dirs``: the launcher makes
    them where the stage runs (the local one leaves it to the process it starts).
    """
    adir = rundir.new_attempt(stage.name, number)
    tmp_out = adir / "out.tmp"
    work = adir / "work"
    ctx: dict[str, Any] = {
        "run_id": run_id, "stage": stage.name, "attempt": number,
        "target": stage.target, "params": dict(stage.params),
        "inputs": {i: str(rundir.out_dir(i)) for i in stage.inputs},
        "out_dir": str(tmp_out), "work_dir": str(work), "events": str(adir / "events.jsonl"),
        "checkpoint_dir": str(rundir.checkpoint_dir(stage.name)), "knobs": dict(knobs),
    }
    ctx_path = adir / "context.json"
    write_bytes(ctx_path, json.dumps(ctx).encode())
    python = stage.target is not None
    return Job(run_id=run_id, stage=stage.name, attempt=number,
               argv=tuple(stage_argv(stage, ctx, ctx_path)),
               env=stage_environment(stage, ctx, ctx_path, pythonpath=pythonpath),
               cwd=str(work), stdout=str(adir / "stdout.log"), stderr=str(adir / "stderr.log"),
               memory_cap=cap, label=f"{run_id}.{stage.name}.{number}",
               python_context=str(ctx_path) if python else None,
               python_module=str(stage.target).partition(":")[0] if python else None,
               dirs=(str(tmp_out), str(work)))


def stage_environment(stage: Stage, ctx: Mapping[str, Any], ctx_path: Path, *,
                      pythonpath: str) -> dict[str, str]:
    """The environment of a stage process (this process's, plus the contract above)."""
    env = dict(os.environ)
    env.update({
        "BLUT_CONTEXT": str(ctx_path), "BLUT_RUN_ID": str(ctx["run_id"]), "BLUT_STAGE": stage.name,
        "BLUT_ATTEMPT": str(ctx["attempt"]), "BLUT_OUT_DIR": str(ctx["out_dir"]),
        "BLUT_EVENTS": str(ctx["events"]), "BLUT_PARAMS": json.dumps(ctx["params"]),
    })
    for name, path in ctx["inputs"].items():
        env["BLUT_INPUT_" + "".join(c if c.isalnum() else "_" for c in name).upper()] = path
    if stage.kind == "python" and pythonpath:
        env["PYTHONPATH"] = pythonpath
    env.update(stage.env)
    return env


def stage_argv(stage: Stage, ctx: Mapping[str, Any], ctx_path: Path) -> list[str]:
    """The argv that starts ``stage`` (placeholders were checked by ``Plan.validate``)."""
    if stage.target is not None:
        return [sys.executable, "-m", "blut_core.process.runner", str(ctx_path)]
    fields = {"out": ctx["out_dir"], "inputs": ctx["inputs"], "params": ctx["params"],
              "attempt": ctx["attempt"], "work": ctx["work_dir"], "python": sys.executable}
    return [item.format(**fields) if "{" in item else item for item in stage.argv or ()]


def read_events_from(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete event lines a stage appended to ``path`` after ``offset``, and the new offset.

    A line still being written (no newline yet) is left for the next read; a garbled line
    is skipped.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in data[: end + 1].splitlines():
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events, offset + end + 1


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as strict JSON: non-finite floats become their text ("nan", "inf")."""
    import math

    out: dict[str, Any] = {}
    for k, v in values.items():
        out[k] = repr(v) if isinstance(v, float) and not math.isfinite(v) else v
    return out


def stage_pythonpath() -> str:
    """``PYTHONPATH`` of Python stage processes: this process's import path."""
    return os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))


def prepare_launcher(launcher: Launcher, stages: list[Stage]) -> None:
    """Let ``launcher`` get ready for ``stages`` (e.g. start its fork server and import the
    stage modules) while the run is still being set up."""
    modules = sorted({str(s.target).partition(":")[0] for s in stages if s.target is not None})
    env = dict(os.environ)
    pythonpath = stage_pythonpath()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    launcher.prepare(env, modules)
