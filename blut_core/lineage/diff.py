"""Two runs side by side: params (dotted keys), provenance, outcomes, metrics, peaks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from blut_core.lineage.extract import final_metrics
from blut_core.lineage.model import Row, RunLineage

PROVENANCE_KEYS = ("recipe", "recipe_commit", "recipe_dirty", "blut_commit", "blut_dirty",
                   "blut_version", "python", "host", "cpu_model", "cores", "ram_bytes",
                   "gpu_name", "gpu_memory_bytes", "launcher", "containment")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


def _pairs(a: Mapping[str, Any], b: Mapping[str, Any], *, everything: bool) -> list[dict[str, Any]]:
    keys = sorted(set(a) | set(b))
    return [{"key": k, "a": a.get(k), "b": b.get(k)} for k in keys
            if everything or a.get(k) != b.get(k) or (k in a) != (k in b)]


def provenance(lineage: RunLineage) -> dict[str, Any]:
    """The comparable provenance of a run, plugin versions as ``plugin.<name>``."""
    data = {k: lineage.run.get(k) for k in PROVENANCE_KEYS}
    for p in lineage.plugins:
        state = f" ({p['state']})" if p.get("state") not in (None, "ok") else ""
        data[f"plugin.{p['name']}"] = f"{p.get('distribution')} {p.get('version')}{state}"
    return data


def stage_summary(lineage: RunLineage) -> dict[str, Row]:
    """The last attempt of each stage: state, attempts, peak, duration."""
    out: dict[str, Row] = {}
    for r in sorted(lineage.stages, key=lambda r: (r["stage"], r["attempt"])):
        out[r["stage"]] = {"state": r["state"], "attempts": r["attempt"],
                           "peak_bytes": r["peak_bytes"], "cap_bytes": r["cap_bytes"],
                           "duration": r["duration"], "output_hash": r["output_hash"]}
    return out


def diff_runs(a: RunLineage, b: RunLineage, *, everything: bool = False) -> dict[str, Any]:
    """The ``blut runs diff --json`` document (only differing keys unless ``everything``)."""
    pa = flatten(json.loads(a.run["params"]) if a.run["params"] else {})
    pb = flatten(json.loads(b.run["params"]) if b.run["params"] else {})
    ma, mb = final_metrics(a), final_metrics(b)
    metrics = []
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key), mb.get(key)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
        metrics.append({"key": key, "a": va, "b": vb,
                        "delta": (vb - va) if numeric else None})  # type: ignore[operator]
    sa, sb = stage_summary(a), stage_summary(b)
    order = list(dict.fromkeys([*sa, *sb]))
    return {
        "a": a.run_id, "b": b.run_id,
        "outcome": {"a": a.run["outcome"], "b": b.run["outcome"]},
        "wall": {"a": a.run["wall"], "b": b.run["wall"]},
        "params_fingerprint": {"a": a.run["params_fingerprint"], "b": b.run["params_fingerprint"]},
        "params": _pairs(pa, pb, everything=everything),
        "provenance": _pairs(provenance(a), provenance(b), everything=everything),
        "metrics": metrics,
        "stages": [{"stage": s, "a": sa.get(s), "b": sb.get(s)} for s in order],
    }
