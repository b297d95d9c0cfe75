"""A run's stage outputs: cache keys, cache hits, and promotion of a finished attempt's outputs.

The executor asks two questions of it — "is this stage's result cached?" and "promote what
this attempt wrote" — and reads the logical hashes of finished stages from it, which are
what their dependents' cache keys are made of.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.model.stage import Stage
from blut_core.store.cache import Cache, CacheEntry, identity_text, keyed
from blut_core.store.rundir import RunDir


class Outputs:
    """Cache lookups and promotions of one run; ``hashes`` holds every finished stage's."""

    def __init__(self, cache: Cache, rundir: RunDir,
                 known: Mapping[str, CacheEntry] | None = None) -> None:
        self.cache = cache
        self.rundir = rundir
        self.hashes: dict[str, str] = {}
        self._known = dict(known or {})  # entries looked up already, by key: used once
        self._identities: dict[str, str] = {}

    def key(self, s: Stage) -> str:
        """``s``'s cache key, from its identity (encoded once a run) and its (finished)
        inputs' hashes."""
        text = self._identities.get(s.name)
        if text is None:
            text = self._identities[s.name] = identity_text(s.identity())
        return keyed(text, {i: self.hashes[i] for i in s.inputs})

    def cached(self, s: Stage) -> StageOutcome | None:
        """The outcome of ``s`` as a cache hit (its outputs materialised), or ``None``."""
        key = self.key(s)
        entry = self._known.pop(key, None) or self.cache.lookup(key)
        if entry is None:
            return None
        self.cache.materialize(entry, self.rundir.out_dir(s.name))
        self.hashes[s.name] = entry.output_hash
        return StageOutcome(stage=s.name, attempt=0, state=StageState.CACHED,
                            classification=Classification.OK, cache_key=key,
                            output_hash=entry.output_hash)

    def promote(self, s: Stage, tmp_out: Path, key: str | None, attempt_dir: Path) -> str:
        """Move an attempt's outputs into place (and into the cache); their logical hash."""
        dest = self.rundir.promote(s.name, tmp_out)
        if s.cache and key is not None:
            output_hash = self.cache.store(key, s.name, dest).output_hash
        else:
            from blut_core.model.hashing import tree_hash

            output_hash = tree_hash(dest)
        self.hashes[s.name] = output_hash
        work = attempt_dir / "work"
        try:  # scratch is freed; an empty one is left as it is (a removal costs more)
            with os.scandir(work) as entries:
                used = next(entries, None) is not None
        except OSError:
            used = False
        if used:
            shutil.rmtree(work, ignore_errors=True)
        return output_hash
