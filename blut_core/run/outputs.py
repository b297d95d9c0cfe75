"""A run's stage outputs: cache keys, cache hits, and promotion of a finished attempt's outputs.

The executor asks two questions of it — "is this stage's result cached?" and "promote what
this attempt wrote" — and reads the logical hashes of finished stages from it, which are
what their dependents' cache keys are made of.

A promotion hashes the output at once (the hash is the stage's outcome and its dependents'
input) but writes its cache entry later, in :meth:`Outputs.write_stores`: the executor calls
that once a loop turn has started the stages it could, so that the dependents of a stage
start before its entry is written, and once more before the run ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from blut_core.model.outcome import Classification, StageOutcome, StageState
from blut_core.model.stage import Stage
from blut_core.store.cache import Cache, CacheEntry, PendingStore, identity_text, keyed
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
        self._stores: list[PendingStore] = []  # hashed outputs whose entries are not written yet

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
        """Move an attempt's outputs into place and hash them; their logical hash. Their
        cache entry is written by the next :meth:`write_stores`."""
        dest = self.rundir.promote(s.name, tmp_out)
        if s.cache and key is not None:
            pending = self.cache.prepare(key, s.name, dest)
            if pending.copies:  # a file shared outside blut is copied at once, next to its hash
                self.cache.write(pending)
            else:
                self._stores.append(pending)
            output_hash = pending.output_hash
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

    def write_stores(self) -> None:
        """Write the cache entries of the outputs promoted since the last call.

        A stage's outcome is recorded by now, so an entry that cannot be written (a full
        disk, a cache folder turned read-only) is a ``cache_not_stored`` warning and a miss
        for the next run, never a failed stage: its output is in the run directory.
        """
        while self._stores:
            pending = self._stores.pop(0)
            try:
                self.cache.write(pending)
            except OSError as exc:
                from blut_core.host.log import get_logger

                get_logger().warning("cache_not_stored", stage=pending.stage,
                                     path=str(pending.final), error=str(exc),
                                     hint="the output is kept in the run directory; the next "
                                          "run runs this stage again and stores it then")
