"""What a plan would do now: each stage's cache state, without running anything."""

from __future__ import annotations

import enum

import attrs

from blut_core.model.plan import Plan
from blut_core.model.reprs import record_repr
from blut_core.store.cache import Cache, CacheEntry, cache_key


class CacheState(enum.Enum):
    CACHED = "cached"          # its key is stored: it will be skipped
    WILL_RUN = "will_run"      # its key is known and not stored
    DEPENDS = "depends"        # an input will run, so its key is not known yet
    UNCACHED = "uncached"      # the stage opted out of caching


@attrs.frozen(kw_only=True)
class StagePlanState:
    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: str
    state: CacheState
    cache_key: str | None
    output_hash: str | None


def cache_states(plan: Plan, cache: Cache, *, no_cache: bool = False,
                 entries: dict[str, CacheEntry] | None = None,
                 until_miss: bool = False) -> dict[str, StagePlanState]:
    """Predict, in dependency order, which stages a run would skip (the entries found go
    into ``entries``, by cache key, when given). With ``until_miss``, stop at the first
    stage that would run: the states so far and that one's (whether all are cached)."""
    out: dict[str, StagePlanState] = {}
    for stage in plan.topological():
        hashes: dict[str, str] = {}
        for name in stage.inputs:
            h = out[name].output_hash
            if h is None:
                break
            hashes[name] = h
        if len(hashes) != len(stage.inputs):
            out[stage.name] = StagePlanState(stage=stage.name, state=CacheState.DEPENDS,
                                             cache_key=None, output_hash=None)
            continue
        key = cache_key(stage.identity(), hashes)
        entry = None if (no_cache or not stage.cache) else cache.lookup(key)
        if entry is not None:
            if entries is not None:
                entries[key] = entry
            out[stage.name] = StagePlanState(stage=stage.name, state=CacheState.CACHED,
                                             cache_key=key, output_hash=entry.output_hash)
        else:
            state = CacheState.WILL_RUN if stage.cache else CacheState.UNCACHED
            out[stage.name] = StagePlanState(stage=stage.name, state=state, cache_key=key,
                                             output_hash=None)
            if until_miss:
                break
    return out
