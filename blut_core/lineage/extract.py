"""One run directory → one :class:`RunLineage`: the rows every lineage sink stores.

Reads ``plan.json``, ``params.json``, ``provenance.json`` and ``status.jsonl`` (see
:mod:`blut_core.store.rundir`) and, for file-level artifacts, the manifest of the stage's cache
entry (``meta.json``) when it matches the output hash, else hashes ``stages/<name>/out``.
Missing optional fields become ``None``; a directory that :func:`blut_core.store.runs.load_run`
finds damaged (a file missing or unreadable, a status stream with garbage in it, a finished
stage's output gone) raises :class:`DamagedRun` naming every reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from blut_core.errors import ConfigError
from blut_core.lineage.model import Row, RunLineage
from blut_core.model.hashing import canonical_json, digest, is_finite_number, tree_manifest
from blut_core.store.rundir import STATUS, read_status
from blut_core.store.runs import DOCUMENTS, load_run, read_document


class DamagedRun(ConfigError):
    """A run directory that cannot be read as a whole run (see the module docstring)."""


def _read_json(path: str | Path) -> tuple[bool, Any]:
    """``(present, value)``; a present but unreadable file is ``(True, None)``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return False, None
    except OSError:
        return True, None
    try:
        return True, json.loads(text)
    except ValueError:
        return True, None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _float(value: Any) -> float | None:
    return float(value) if is_finite_number(value) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return canonical_json(value) if isinstance(value, (dict, list)) else str(value)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return json.dumps(value, sort_keys=True, default=str)


def damaged(run_dir: Path, why: str) -> DamagedRun:
    return DamagedRun(f"run directory {run_dir} is damaged: {why}",
                      hint="it is skipped by `blut lineage reindex`; remove it or repair the file")


def extract_run(run_dir: Path, *, cache_root: Path | None = None) -> RunLineage:
    """Read one run directory into lineage rows (raises :class:`DamagedRun`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a run directory", hint="see `blut runs list`")
    cache_root = cache_root if cache_root is not None else run_dir.parent.parent / "cache"
    status = read_status(run_dir / STATUS)             # parsed once, for every table below
    documents = {name: read_document(run_dir / name) for name in DOCUMENTS}
    record = load_run(run_dir, status, documents=documents)
    if record.damage and record.state != "running":
        raise damaged(run_dir, "; ".join(record.damage))
    events = status.events
    started_ev = next((e for e in events if e.get("event") == "run_started"), None)
    plan = documents["plan.json"][0]
    if started_ev is None or not isinstance(plan, dict) or not isinstance(plan.get("stages"), list):
        raise damaged(run_dir, "; ".join(record.damage) or "it has no plan or no run_started event")
    plan_stages = [s for s in plan["stages"] if isinstance(s, dict) and s.get("name")]
    params = documents["params.json"][0]
    prov = documents["provenance.json"][0]
    prov = prov if isinstance(prov, dict) else {}
    run_id = run_dir.name

    stages = _stage_rows(run_id, events)
    outputs = _outputs(stages)
    artifacts = _artifacts(run_id, run_dir, cache_root, outputs)
    edges = _edges(run_id, plan_stages, stages, outputs)
    metrics = _metrics(run_id, events)
    calibration = _calibration(run_id, events)

    recipe_git: dict[str, Any] = prov.get("recipe_git") or {}
    blut_git: dict[str, Any] = prov.get("blut_git") or {}
    if not isinstance(recipe_git, dict):
        recipe_git = {}
    if not isinstance(blut_git, dict):
        blut_git = {}
    gpus = [g for g in prov.get("gpus") or () if isinstance(g, dict)]
    containment = prov.get("containment")
    if isinstance(containment, dict):
        containment = containment.get("name") or containment.get("backend") or containment
    run: Row = {
        "run_id": run_id,
        "recipe": _text(started_ev.get("recipe") or plan.get("recipe") or prov.get("recipe")),
        "params_fingerprint": digest(params) if params is not None else None,
        "params": _json_text(params),
        "outcome": record.state,
        "started": _float(record.started),
        "ended": _float(record.ended),
        "wall": _float(record.wall),
        "recipe_commit": _text(recipe_git.get("commit")),
        "recipe_dirty": _bool(recipe_git.get("dirty")),
        "recipe_root": _text(recipe_git.get("root")),
        "blut_commit": _text(blut_git.get("commit")),
        "blut_dirty": _bool(blut_git.get("dirty")),
        "blut_version": _text(prov.get("blut_version")),
        "python": _text(prov.get("python")),
        "host": _text(prov.get("host")),
        "cpu_model": _text(prov.get("cpu_model")),
        "cores": _int(prov.get("cores")),
        "ram_bytes": _int(prov.get("ram_bytes")),
        "gpu_name": _text(gpus[0].get("name")) if gpus else None,
        "gpu_memory_bytes": _int(gpus[0].get("memory_bytes")) if gpus else None,
        "gpu_count": len(gpus),
        "launcher": _text(started_ev.get("launcher") or prov.get("launcher")),
        "containment": _text(containment),
        "user_name": _text(prov.get("user")),
        "run_dir": str(run_dir),
        "stage_count": len(plan_stages),
        "counts": _json_text(dict(sorted(record.counts.items()))),
        "schedule": _text(record.schedule),
    }
    plugins = tuple({"run_id": run_id, "name": _text(p.get("name")),
                     "distribution": _text(p.get("distribution")),
                     "version": _text(p.get("version")), "state": _text(p.get("state"))}
                    for p in prov.get("plugins") or () if isinstance(p, dict))
    return RunLineage(run=run, plugins=plugins, stages=tuple(stages.values()),
                      artifacts=tuple(artifacts), edges=tuple(edges), metrics=tuple(metrics),
                      calibration=tuple(calibration))


def _new_stage(run_id: str, stage: str, attempt: int) -> Row:
    return {"run_id": run_id, "stage": stage, "attempt": attempt, "state": None,
            "classification": None, "returncode": None, "cached": False, "retried": False,
            "decision": None, "waited": None, "admit_reason": None, "knobs": None,
            "footprint_bytes": None, "cap_bytes": None, "peak_bytes": None, "started": None,
            "finished": None, "duration": None, "cache_key": None, "output_hash": None,
            "job_id": None, "launcher": None, "error": None}


def _stage_rows(run_id: str, events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], Row]:
    rows: dict[tuple[str, int], Row] = {}
    refusals: dict[str, str] = {}

    def row(stage: str, attempt: Any) -> Row:
        key = (stage, _int(attempt) or 0)
        if key not in rows:
            rows[key] = _new_stage(run_id, stage, key[1])
        return rows[key]

    for ev in events:
        kind = ev.get("event")
        stage = ev.get("stage")
        if not isinstance(stage, str) or not isinstance(kind, str):
            continue
        t = _float(ev.get("t"))
        if kind == "stage_skipped":
            r = row(stage, 0)
            r.update(state="cached", classification="ok", cached=True, started=t, finished=t,
                     duration=0.0, cache_key=_text(ev.get("cache_key")),
                     output_hash=_text(ev.get("output_hash")))
        elif kind == "stage_admitted":
            r = row(stage, ev.get("attempt"))
            r.update(decision=_text(ev.get("decision")), waited=_float(ev.get("waited")),
                     admit_reason=_text(ev.get("reason")) or None,
                     knobs=_json_text(ev.get("knobs") or {}),
                     footprint_bytes=_int(ev.get("footprint_bytes")),
                     cap_bytes=_int(ev.get("cap_bytes")))
        elif kind == "stage_started":
            r = row(stage, ev.get("attempt"))
            r.update(state=r["state"] or "running", started=t,
                     cache_key=_text(ev.get("cache_key")), job_id=_text(ev.get("job_id")),
                     launcher=_text(ev.get("launcher")))
            if ev.get("cap_bytes") is not None:
                r["cap_bytes"] = _int(ev.get("cap_bytes"))
        elif kind == "stage_retrying":
            attempt = (_int(ev.get("attempt")) or 1) - 1
            if (stage, attempt) in rows:
                rows[(stage, attempt)]["retried"] = True
        elif kind == "stage_refused":
            refusals[stage] = _text(ev.get("reason")) or ""
        elif kind == "stage_finished":
            r = row(stage, ev.get("attempt"))
            r.update(state=_text(ev.get("state")), classification=_text(ev.get("classification")),
                     returncode=_int(ev.get("returncode")), duration=_float(ev.get("duration")),
                     peak_bytes=_int(ev.get("peak_bytes")), finished=t,
                     output_hash=_text(ev.get("output_hash")), error=_text(ev.get("error")))
            if ev.get("cap_bytes") is not None:
                r["cap_bytes"] = _int(ev.get("cap_bytes"))
            if ev.get("cache_key"):
                r["cache_key"] = _text(ev.get("cache_key"))
            if r["state"] == "cached":
                r["cached"] = True
            if r["state"] == "refused" and stage in refusals:
                r.update(decision="refuse", admit_reason=refusals[stage] or None)
    return rows


def _outputs(stages: Mapping[tuple[str, int], Row]) -> dict[str, Row]:
    """The attempt row that produced each stage's promoted output (ok or cached)."""
    out: dict[str, Row] = {}
    for (name, _), r in sorted(stages.items()):
        if r["state"] in ("ok", "cached") and r["output_hash"]:
            out[name] = r
    return out


Manifest = list[tuple[str, str, int]]
#: Manifests read from cache entries, by ``(cache key, output hash)``: an entry's manifest
#: never changes for a given output hash, and a reindex meets the same entry in every run
#: that took it from the cache.
_MANIFESTS: dict[tuple[str, str], Manifest] = {}
_MANIFESTS_MAX = 4096


def _cached_manifest(cache_root: str, key: str, output_hash: str) -> Manifest | None:
    memo = _MANIFESTS.get((key, output_hash))
    if memo is not None:
        return memo
    _, meta = _read_json(os.path.join(cache_root, key[:2], key, "meta.json"))
    if not isinstance(meta, dict) or meta.get("output_hash") != output_hash:
        return None
    manifest = meta.get("manifest")
    if not isinstance(manifest, list):
        return None
    try:
        found = [(str(rel), str(sha), int(size)) for rel, sha, size in manifest]
    except (TypeError, ValueError):
        return None
    if len(_MANIFESTS) >= _MANIFESTS_MAX:
        _MANIFESTS.clear()
    _MANIFESTS[(key, output_hash)] = found
    return found


def _manifest(cache_root: str, row: Row, out_dir: str) -> Manifest | None:
    """The stage's cache entry manifest when it matches the output, else the hashed tree."""
    key = row.get("cache_key")
    if key:
        manifest = _cached_manifest(cache_root, key, row["output_hash"])
        if manifest is not None:
            return manifest
    if os.path.isdir(out_dir):
        try:
            return tree_manifest(Path(out_dir))
        except OSError:
            return None
    return None


def _artifacts(run_id: str, run_dir: Path, cache_root: Path,
               outputs: Mapping[str, Row]) -> list[Row]:
    rows: list[Row] = []
    stages_dir = os.path.join(run_dir, "stages")
    cache = os.fspath(cache_root)
    for name, r in outputs.items():
        out_dir = os.path.join(stages_dir, name, "out")
        manifest = _manifest(cache, r, out_dir)
        produced = r["finished"]
        rows.append({"run_id": run_id, "stage": name, "kind": "dir", "hash": r["output_hash"],
                     "size": sum(s for _, _, s in manifest) if manifest is not None else None,
                     "files": len(manifest) if manifest is not None else None,
                     "path": out_dir, "parent_hash": None, "produced": produced})
        for rel, sha, size in manifest or ():
            rows.append({"run_id": run_id, "stage": name, "kind": "file", "hash": sha,
                         "size": size, "files": None, "path": rel,
                         "parent_hash": r["output_hash"], "produced": produced})
    return rows


def _edges(run_id: str, plan_stages: Iterable[Mapping[str, Any]],
           stages: Mapping[tuple[str, int], Row], outputs: Mapping[str, Row]) -> list[Row]:
    ran = {name for name, _ in stages}
    rows: list[Row] = []
    for s in plan_stages:
        name = str(s["name"])
        if name not in ran:
            continue
        produced = outputs.get(name)
        for inp in s.get("inputs") or ():
            source = outputs.get(str(inp))
            rows.append({"run_id": run_id, "stage": name, "input_stage": str(inp),
                         "input_hash": source["output_hash"] if source else None,
                         "output_hash": produced["output_hash"] if produced else None})
    return rows


def _metric_value(value: Any) -> tuple[float | None, str | None]:
    if is_finite_number(value):
        return float(value), None
    return None, json.dumps(value, default=str)


def _metrics(run_id: str, events: Iterable[Mapping[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    last: dict[tuple[str, str], int] = {}
    for ev in events:
        if ev.get("event") != "stage_metric" or not isinstance(ev.get("stage"), str):
            continue
        values = ev.get("values")
        if not isinstance(values, dict):
            continue
        for name, raw in values.items():
            value, text = _metric_value(raw)
            last[(ev["stage"], str(name))] = len(rows)
            rows.append({"run_id": run_id, "stage": ev["stage"], "attempt": _int(ev.get("attempt")),
                         "step": _int(ev.get("step")), "name": str(name), "value": value,
                         "text_value": text, "t": _float(ev.get("t")), "final": False})
    for i in last.values():
        rows[i]["final"] = True
    return rows


def _calibration(run_id: str, events: Iterable[Mapping[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for ev in events:
        kind = ev.get("event")
        if not isinstance(kind, str) or not kind.startswith("calibration_"):
            continue
        data = {k: v for k, v in ev.items() if k not in ("event", "t")}
        rows.append({"run_id": run_id, "t": _float(ev.get("t")), "event": kind,
                     "stage": _text(ev.get("stage")),
                     "key": _text(ev.get("key", ev.get("calibration_key"))),
                     "peak_bytes": _int(ev.get("peak_bytes", ev.get("peak"))),
                     "source": _text(ev.get("source")), "data": _json_text(data)})
    return rows


def final_metrics(lineage: RunLineage) -> dict[str, Any]:
    """``{"stage.metric": value}`` of the last value each stage reported for each metric."""
    out: dict[str, Any] = {}
    for m in lineage.metrics:
        if m["final"]:
            value = m["value"] if m["value"] is not None else json.loads(m["text_value"] or "null")
            out[f"{m['stage']}.{m['name']}"] = value
    return dict(sorted(out.items()))
