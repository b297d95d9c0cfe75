"""Reading run directories back: a run's state and its stages, from ``status.jsonl``.

A run without a ``run_finished`` event whose driver process is gone is *interrupted*, never
"running forever".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from blut_core.errors import ConfigError
from blut_core.store.rundir import STATUS, driver_alive, read_events


@attrs.frozen(kw_only=True)
class RunRecord:
    """What ``blut runs list`` and ``blut runs show`` print for one run."""

    run_id: str
    recipe: str
    state: str                   # running | ok | failed | cancelled | interrupted
    started: float | None
    ended: float | None
    wall: float | None
    path: Path
    stages: dict[str, dict[str, Any]]
    counts: dict[str, int]

    def to_json(self, *, with_stages: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"run_id": self.run_id, "recipe": self.recipe, "state": self.state,
                "started": self.started, "ended": self.ended, "wall": self.wall,
                "path": str(self.path), "counts": self.counts}
        if with_stages:
            data["stages"] = self.stages
        return data


def load_run(path: Path, events: Iterable[dict[str, Any]] | None = None) -> RunRecord:
    """Summarise one run directory from its status stream (``events``: already read)."""
    recipe = "?"
    started = ended = wall = None
    outcome: str | None = None
    stages: dict[str, dict[str, Any]] = {}
    for ev in read_events(path / STATUS) if events is None else events:
        kind = ev.get("event")
        name = ev.get("stage")
        if kind == "run_started":
            recipe = str(ev.get("recipe", recipe))
            started = ev.get("t")
            for s in ev.get("stages") or ():
                stages.setdefault(str(s), {"state": "pending", "attempts": 0})
        elif kind == "run_resumed":
            outcome = ended = wall = None
        elif kind == "run_finished":
            outcome = str(ev.get("outcome"))
            ended = ev.get("t")
            wall = ev.get("wall")
        elif kind == "stage_started" and name:
            st = stages.setdefault(name, {})
            st.update(state="running", attempts=ev.get("attempt", 1))
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
            st["attempts"] = max(int(st.get("attempts") or 0), int(ev.get("attempt") or 0))
    state = outcome if outcome is not None else ("running" if driver_alive(path) else "interrupted")
    counts: dict[str, int] = {}
    for st in stages.values():
        counts[str(st.get("state"))] = counts.get(str(st.get("state")), 0) + 1
    return RunRecord(run_id=path.name, recipe=recipe, state=state, started=started, ended=ended,
                     wall=wall, path=path, stages=stages, counts=counts)


def list_runs(runs_root: Path) -> list[RunRecord]:
    """Every run under ``runs_root``, newest first."""
    if not runs_root.is_dir():
        return []
    paths = [p for p in runs_root.iterdir() if p.is_dir() and (p / STATUS).exists()]
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
    if ref and (exact / STATUS).exists():
        return exact
    matches = sorted(p for p in runs_root.glob(f"{ref}*") if (p / STATUS).exists()) if ref else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(f"no run {ref!r} under {runs_root}", hint="see `blut runs list`")
    raise ConfigError(f"run id prefix {ref!r} is ambiguous",
                      hint="candidates: " + ", ".join(p.name for p in matches[:10]))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
