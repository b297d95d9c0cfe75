"""After blut's W1 run: did it really do what the issue demands? Every stage finished, each in
its own memory cgroup, booked, recorded in the status stream and promoted into the cache.

Every claim comes from what the run left behind (its status stream, ``blut runs show --json``,
``blut cache stats --json``, the cache folder) or from what the sampler saw while it ran; a
thing that is not recorded is reported as such, not assumed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.peers.measure import Watch


def _events(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for line in (run_dir / "status.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "<unparsable line>"})
    return out


def _blut_json(blut: list[str], env: dict[str, str], *args: str) -> tuple[Any, str]:
    r = subprocess.run([*blut, *args, "--json"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    try:
        return json.loads(r.stdout), ""
    except ValueError as exc:
        return None, f"not JSON: {exc}"


def check_w1(home: Path, n: int, blut: list[str], env: dict[str, str], seen: Watch) -> list[tuple[bool, str]]:
    """(ok, sentence) per demand, for the one run in ``home``."""
    runs = sorted((home / "runs").glob("*/status.jsonl"))
    if len(runs) != 1:
        return [(False, f"expected one run in {home / 'runs'}, found {len(runs)}")]
    run_dir = runs[0].parent
    ev = _events(run_dir)
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for e in ev:
        if "stage" in e:
            by.setdefault(e["event"], {})[e["stage"]] = e
    finished = by.get("stage_finished", {})
    admitted = by.get("stage_admitted", {})
    started = by.get("stage_started", {})
    out: list[tuple[bool, str]] = []

    end = [e for e in ev if e["event"] == "run_finished"]
    ok = [s for s, e in finished.items() if e.get("state") == "ok"]
    out.append((len(ok) == n and bool(end) and end[-1].get("outcome") == "ok",
                f"finished: {len(ok)}/{n} stage_finished state=ok in the status stream, "
                f"run_finished outcome={end[-1].get('outcome') if end else 'MISSING'}"))
    shown, err = _blut_json(blut, env, "runs", "show", run_dir.name)
    if shown is None:
        out.append((False, f"`blut runs show --json` failed: {err}"))
    else:
        stages = shown.get("stages", {})
        good = sum(1 for s in stages.values() if s.get("state") == "ok")
        shown_kinds = sorted({str(s.get("containment")) for s in stages.values()})
        own = {str(s.get("cgroup")) for s in stages.values()
               if str(s.get("cgroup") or "").startswith("/sys/fs/cgroup/")}
        out.append((good == n and len(own) == n and "None" not in shown_kinds,
                    f"`blut runs show --json`: {good}/{n} stages state=ok; containment "
                    f"{shown_kinds}, {len(own)}/{n} with a memory cgroup of their own"))

    kinds = {str(e.get("containment")) for e in admitted.values()}
    cgroups = [str(e.get("cgroup") or "") for e in started.values()]
    real = [c for c in cgroups if c.startswith("/sys/fs/cgroup/memory/")]
    names = {Path(c).name for c in real}
    live = len(seen.cgroups & names)
    other = len(seen.cgroups - names)
    out.append((len(real) == n and len(names) == n and "None" not in kinds,
                f"contained: stage_admitted containment={sorted(kinds)}; {len(real)}/{n} "
                f"stage_started events name a memory cgroup ({len(names)} distinct); sampling the "
                f"driver's cgroup every few ms saw {live} of those live"
                + (f" (and {other} other cgroups of this driver, e.g. {min(seen.cgroups - names)})"
                   if other else "")))
    caps = {e.get("cap_bytes") for e in started.values()}
    out.append((all(isinstance(c, int) and c > 0 for c in caps),
                f"capped: stage_started cap_bytes {sorted(c for c in caps if c is not None)[:3]}"))

    admits = [e for e in admitted.values() if e.get("decision") == "admit"]
    booked = [e for e in admits if int(e.get("footprint_bytes") or 0) > 0]
    ledger = (f"the ledger file held up to {seen.bookings_max} bookings at once while it ran"
              if seen.bookings_max >= 0 else
              "the ledger file was never readable as JSON while it ran"
              + (f" ({seen.ledger_unreadable} unreadable samples)" if seen.ledger_unreadable else ""))
    out.append((len(booked) == n and seen.bookings_max > 0,
                f"booked: {len(booked)}/{n} stage_admitted decision=admit with a footprint "
                f"(booked_bytes = the ledger's bookings at admission); {ledger}"))

    keys = {s: e.get("cache_key") for s, e in finished.items()}
    in_dir = sum(1 for k in keys.values() if k and (home / "cache" / k[:2] / k / "meta.json").exists())
    stats, err = _blut_json(blut, env, "cache", "stats", run_dir.name)
    if stats is None:
        counted = f"`blut cache stats RUN --json` failed: {err}"
        entries = -1
    else:
        entries = sum(1 for s in stats.get("stages", []) if int(s.get("entries") or 0) > 0)
        counted = f"`blut cache stats RUN --json`: {entries}/{n} stages with a cache entry"
    out.append((in_dir == n and entries == n,
                f"cached: {in_dir}/{n} stages' cache keys have an entry in {home / 'cache'}; "
                + counted))
    return out


def check_rerun(home: Path, n: int) -> tuple[bool, str]:
    """Was blut's last W4 run really a re-run with every stage a cache hit?"""
    runs = sorted((home / "runs").glob("*/status.jsonl"), key=lambda p: p.stat().st_mtime)
    if not runs:
        return False, f"W4: no run in {home / 'runs'}"
    ev = _events(runs[-1].parent)
    skipped = sum(1 for e in ev if e["event"] == "stage_skipped")
    started = sum(1 for e in ev if e["event"] == "stage_started")
    return (skipped == n and started == 0,
            f"W4 re-run: the last of its {len(runs)} runs has {skipped}/{n} stage_skipped "
            f"(cache hits) and {started} stage_started events")
