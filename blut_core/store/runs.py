"""Reading run directories back: a run's state and its stages, from ``status.jsonl``.

A run without a ``run_finished`` event whose driver process is gone is *interrupted*, never
"running forever". A run whose files cannot be read as a run is *damaged*: its record says
what is damaged (``damage``) and what could still be read (``readable``), and it is listed
like any other, so that one damaged directory never hides the others. A status stream whose
last line was cut short by a killed driver is not damage (see
:func:`blut_core.store.rundir.read_status`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from blut_core.errors import ConfigError
from blut_core.model.reprs import record_repr
from blut_core.store.rundir import STATUS, StatusStream, driver_alive, read_status

#: The JSON documents every run directory holds, besides its status stream.
DOCUMENTS = ("plan.json", "params.json", "provenance.json", "driver.json")
#: At most this many stages are named in one damage reason.
_NAMED = 5


@attrs.frozen(kw_only=True)
class RunRecord:
    """What ``blut runs list`` and ``blut runs show`` print for one run."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    run_id: str
    recipe: str
    state: str                   # running | ok | failed | cancelled | interrupted | damaged
    started: float | None
    ended: float | None
    wall: float | None
    path: Path
    stages: dict[str, dict[str, Any]]
    counts: dict[str, int]
    damage: tuple[str, ...] = ()     # what cannot be read, one reason each
    readable: tuple[str, ...] = ()   # the run's files that could be read
    schedule: str | None = None      # the schedule that fired it (``run_scheduled``), if one did

    def to_json(self, *, with_stages: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"run_id": self.run_id, "recipe": self.recipe, "state": self.state,
                "started": self.started, "ended": self.ended, "wall": self.wall,
                "path": str(self.path), "counts": self.counts, "damage": list(self.damage),
                "schedule": self.schedule}
        if with_stages:
            data["stages"] = self.stages
            data["readable"] = list(self.readable)
        return data


def read_document(path: Path) -> tuple[Any, str | None]:
    """``(value, problem)`` of one JSON document of a run directory (``problem``: why not)."""
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"{name} is missing"
    except IsADirectoryError:
        return None, f"{name} is a directory"
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror or exc})"
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, f"{name} is not UTF-8 text"
    except ValueError:
        return None, f"{name} is not valid JSON"
    except RecursionError:
        return None, f"{name} is nested too deeply"
    return value, document_problem(name, value)


def document_problem(name: str, value: Any) -> str | None:
    """Why ``value`` (parsed from document ``name``) is not what a run directory holds."""
    if not isinstance(value, dict):
        return f"{name} is not a JSON object"
    if name == "plan.json":
        stages = value.get("stages")
        if not isinstance(stages, list) or not all(isinstance(s, dict) and s.get("name")
                                                   for s in stages):
            return "plan.json is not a plan (no list of named stages)"
    elif name == "driver.json":
        pid = value.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool):
            return "driver.json names no driver process"
    return None


def _stamp(run_id: str, path: Path) -> float | None:
    """When a run started, from its id (``YYYYmmdd-HHMMSS-…``, UTC) or its directory."""
    import calendar  # (~3 ms) only a damaged run's start time needs it

    try:
        return float(calendar.timegm(time.strptime(run_id[:15], "%Y%m%d-%H%M%S")))
    except ValueError:
        try:
            return path.stat().st_mtime
        except OSError:
            return None


def load_run(path: Path, status: StatusStream | Iterable[dict[str, Any]] | None = None, *,
             documents: Mapping[str, tuple[Any, str | None]] | None = None) -> RunRecord:
    """Summarise one run directory from its status stream, and say what of it is damaged.

    ``status`` and ``documents`` (name → :func:`read_document` result): already read.
    """
    if status is None:
        status = read_status(path / STATUS)
    elif not isinstance(status, StatusStream):
        status = StatusStream(list(status))
    docs = {name: (documents[name] if documents and name in documents
                   else read_document(path / name)) for name in DOCUMENTS}
    damage = [problem for _, problem in docs.values() if problem]
    readable = [name for name, (_, problem) in docs.items() if not problem]
    if status.problem:
        damage.insert(0, status.problem)
    else:
        readable.insert(0, STATUS)

    recipe = "?"
    started = ended = wall = None
    outcome: str | None = None
    schedule: str | None = None
    seen_start = False
    stages: dict[str, dict[str, Any]] = {}
    for ev in status.events:
        kind = ev.get("event")
        name = ev.get("stage")
        if not isinstance(name, str):
            name = None
        if kind == "run_started":
            seen_start = True
            recipe = str(ev.get("recipe", recipe))
            started = ev.get("t")
            for s in ev.get("stages") or ():
                stages.setdefault(str(s), {"state": "pending", "attempts": 0})
        elif kind == "run_scheduled" and isinstance(ev.get("schedule"), str):
            schedule = ev["schedule"]
        elif kind == "run_resumed":
            outcome = ended = wall = None
        elif kind == "run_finished":
            outcome = str(ev.get("outcome"))
            ended = ev.get("t")
            wall = ev.get("wall")
        elif kind == "stage_admitted" and name and isinstance(ev.get("containment"), str):
            stages.setdefault(name, {})["containment"] = ev["containment"]
        elif kind == "stage_started" and name:
            st = stages.setdefault(name, {})
            st.update(state="running", attempts=ev.get("attempt", 1))
            for field in ("launcher", "cgroup"):  # where its latest attempt ran
                if isinstance(ev.get(field), str):
                    st[field] = ev[field]
                else:
                    st.pop(field, None)
        elif kind == "stage_skipped" and name:
            stages.setdefault(name, {}).update(state="cached", cache_key=ev.get("cache_key"),
                                               output_hash=ev.get("output_hash"))
        elif kind == "stage_retrying" and name:
            stages.setdefault(name, {}).update(state="retrying")
        elif kind == "stage_finished" and name:
            st = stages.setdefault(name, {})
            for field in ("state", "classification", "duration", "peak_bytes", "cap_bytes",
                          "output_hash", "cache_key", "error", "returncode"):
                if field in ev:
                    st[field] = ev[field]
            st["attempts"] = max(_count(st.get("attempts")), _count(ev.get("attempt")))
            if isinstance(ev.get("node"), str):  # a cluster's node
                st["node"] = ev["node"]
    if not seen_start and not status.problem:
        damage.insert(0, f"{STATUS} has no run_started event")
    if recipe == "?":
        plan = docs["plan.json"][0]
        if isinstance(plan, dict) and isinstance(plan.get("recipe"), str):
            recipe = plan["recipe"]
    damage += _stage_damage(path, stages)
    driver, unreadable = docs["driver.json"]
    if outcome is None and seen_start and not status.problem and not unreadable \
            and driver_alive(path, driver):
        state = "running"   # whatever else is damaged: its driver may still write it
    elif damage:
        state = "damaged"
    else:
        state = outcome if outcome is not None else "interrupted"
    if not isinstance(started, (int, float)):
        started = _stamp(path.name, path) if damage else None
    counts: dict[str, int] = {}
    for st in stages.values():
        counts[str(st.get("state"))] = counts.get(str(st.get("state")), 0) + 1
    return RunRecord(run_id=path.name, recipe=recipe, state=state, started=started,
                     ended=ended if isinstance(ended, (int, float)) else None,
                     wall=wall if isinstance(wall, (int, float)) else None, path=path,
                     stages=stages, counts=counts, damage=tuple(damage),
                     readable=tuple(readable), schedule=schedule)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _stage_damage(path: Path, stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Stages that finished (ok or cached) whose promoted output is not there."""
    if not stages:
        return []
    root = path / "stages"
    if not root.is_dir():
        return ["stages/ is missing" if not root.exists() else "stages/ is not a directory"]
    lost = [name for name, st in stages.items() if st.get("state") in ("ok", "cached")
            and not os.path.isdir(root / name / "out")]
    if not lost:
        return []
    named = ", ".join(lost[:_NAMED]) + (f" and {len(lost) - _NAMED} more" if len(lost) > _NAMED else "")
    return [f"the output of finished stage{'s' if len(lost) > 1 else ''} {named} "
            f"(stages/<name>/out) {'are' if len(lost) > 1 else 'is'} missing"]


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (whole or damaged), not a temporary or foreign one."""
    if path.name.startswith(".") or not path.is_dir():
        return False
    return any(os.path.lexists(path / name) for name in (STATUS, "plan.json", "driver.json"))


def list_runs(runs_root: Path) -> list[RunRecord]:
    """Every run under ``runs_root`` (damaged ones included), newest first."""
    if not runs_root.is_dir():
        return []
    paths = [p for p in runs_root.iterdir() if is_run_dir(p)]
    return sorted((load_run(p) for p in paths), key=lambda r: (r.started or 0.0, r.run_id),
                  reverse=True)


def find_run(runs_root: Path, ref: str) -> Path:
    """A run directory by id or unique id prefix (``latest`` for the newest)."""
    if ref == "latest":
        runs = list_runs(runs_root)
        if not runs:
            raise ConfigError("there are no runs yet", hint="start one with `blut run RECIPE`")
        return runs[0].path
    exact = runs_root / ref
    if ref and "/" not in ref and is_run_dir(exact):
        return exact
    matches = sorted(p for p in runs_root.glob(f"{ref}*") if is_run_dir(p)) \
        if ref and "/" not in ref and not ref.startswith(".") else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(f"no run {ref!r} under {runs_root}", hint="see `blut runs list`")
    raise ConfigError(f"run id prefix {ref!r} is ambiguous",
                      hint="candidates: " + ", ".join(p.name for p in matches[:10]))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
