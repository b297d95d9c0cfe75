"""The calibration store: measured peaks per calibration key, and OOM lower bounds.

Key: (recipe, stage, sorted drivers), and for a stage that declares no driver also its
*scope*: a digest of its params and the size bucket of what it reads (see
:mod:`blut_core.broker.resolve`), so a peak measured on a small workload never stands for a
large one. Sources rank ``default < measured < oom_corrected``:

- a clean peak merges by max; under an ``oom_corrected`` bound, a clean run peaking under
  90 % of its cap replaces the (stale) bound, one that rode its cap raises it and records
  the cap it fitted (``fits``): the bound then stops escalating;
- an OOM kill records the cap it hit as a lower bound (``oom_corrected``);
- resolving a bound escalates it: ``max(bound × factor, bound + step, model)`` (factor 2 by
  default), clamped to what the box can ever give; a bound already at that ceiling cannot
  grow: exhausted;
- a measured peak stands for the inputs it was measured on: when a stage reads more bytes
  than any clean run it was measured on, the footprint is never below the model's.

The store (``$BLUT_HOME/calibration.json``, a snapshot, and ``calibration.json.journal``, the
updates since) is written under an ``flock``: a flush appends its updates to the journal
(one write, one fsync), and the journal is folded into a new snapshot (written atomically)
once it has grown past half of it; a lookup parses only the key it asks for (see
:mod:`blut_core.broker.caljournal`). A corrupt snapshot is set aside
(``calibration.json.corrupt-<time>``) and rebuilt, never fatal.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from blut_core.broker.caljournal import FOLD_BYTES, CalibrationFiles, Corrupt, MustFold, NotSaved, key_line
from blut_core.errors import ConfigError
from blut_core.host.log import get_logger
from blut_core.model.reprs import record_repr
from blut_core.store.rundir import ensure_file_writable

DEFAULT, MEASURED, OOM_CORRECTED = "default", "measured", "oom_corrected"
_HINT = ("move it away (blut starts a new store there), point BLUT_HOME elsewhere, "
         "or run with --no-calibration")
RANK = {DEFAULT: 0, MEASURED: 1, OOM_CORRECTED: 2}
VERSION = 1


@attrs.frozen(kw_only=True)
class CalibrationKey:
    """What determines a stage's memory: its recipe, its name, its drivers and its scope.

    ``scope`` is set only for a stage that declares no driver: ``params`` (a digest of its
    params) and ``inputs`` (the size bucket of the bytes it reads).
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    recipe: str
    stage: str
    drivers: tuple[tuple[str, int], ...] = ()
    scope: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, recipe: str, stage: str, drivers: Mapping[str, int],
           scope: Mapping[str, str] | None = None) -> CalibrationKey:
        return cls(recipe=recipe, stage=stage, drivers=tuple(sorted(drivers.items())),
                   scope=tuple(sorted((scope or {}).items())))

    @functools.cached_property
    def text(self) -> str:
        """``recipe|stage|a=1,b=2`` (``|inputs=…,params=…`` with a scope): how it is stored
        (made once per key: a run looks its stages' keys up on every admission and end)."""
        text = f"{self.recipe}|{self.stage}|" + ",".join(f"{k}={v}" for k, v in self.drivers)
        if self.scope:
            text += "|" + ",".join(f"{k}={v}" for k, v in self.scope)
        return text


@attrs.frozen(kw_only=True)
class Entry:
    """What is known about one key. ``peak`` is a lower bound when ``oom_corrected``.

    ``fits``: the cap a clean run finished under since the last OOM kill (the bound then
    stops escalating); ``inputs``: the most bytes a clean run of this key read.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    recipe: str
    stage: str
    drivers: Mapping[str, int]
    peak: int
    source: str
    samples: int = 1
    updated: float = 0.0
    cap: int | None = None
    seconds: float | None = None   # how long a clean run took (a moving average)
    scope: Mapping[str, str] = attrs.field(factory=dict)
    fits: int | None = None
    inputs: int | None = None

    @property
    def key(self) -> CalibrationKey:
        return CalibrationKey.of(self.recipe, self.stage, self.drivers, self.scope)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key.text, "recipe": self.recipe, "stage": self.stage,
                "drivers": dict(self.drivers), "scope": dict(self.scope),
                "peak_bytes": self.peak, "source": self.source, "samples": self.samples,
                "updated": self.updated, "cap_bytes": self.cap, "seconds": self.seconds,
                "fits_bytes": self.fits, "input_bytes": self.inputs}


def _new(key: CalibrationKey, peak: int, source: str, **kw: Any) -> Entry:
    return Entry(recipe=key.recipe, stage=key.stage, drivers=dict(key.drivers),
                 scope=dict(key.scope), peak=peak, source=source, **kw)


def _most(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


# -- pure rules -------------------------------------------------------------------------


def merge_peak(old: Entry | None, key: CalibrationKey, peak: int, cap: int | None, *,
               now: float, clean_share: float = 0.90, seconds: float | None = None,
               inputs: int | None = None) -> Entry:
    """Fold a clean run's peak (run under ``cap``, reading ``inputs`` bytes) and duration
    into ``old``."""
    before = old.seconds if old is not None else None
    if seconds is not None and before is not None:
        seconds = 0.5 * (before + seconds)
    return _merge_peak(old, key, peak, cap, now=now, clean_share=clean_share, inputs=inputs,
                       seconds=seconds)


def _merge_peak(old: Entry | None, key: CalibrationKey, peak: int, cap: int | None, *,
                now: float, clean_share: float, inputs: int | None,
                seconds: float | None) -> Entry:
    """The merged entry, made once; ``seconds`` is its duration (``None``: as it was)."""
    if old is None or old.source == DEFAULT:
        return _new(key, peak, MEASURED, samples=(old.samples + 1) if old else 1, updated=now,
                    cap=cap, inputs=inputs, seconds=seconds)
    kept = old.seconds if seconds is None else seconds
    if old.source == OOM_CORRECTED:
        if cap is not None and peak < clean_share * cap:  # self-heal a stale bound
            return _new(key, peak, MEASURED, samples=old.samples + 1, updated=now, cap=cap,
                        inputs=inputs, seconds=seconds)
        return attrs.evolve(old, peak=max(old.peak, peak), samples=old.samples + 1, updated=now,
                            fits=_most(old.fits, cap), inputs=_most(old.inputs, inputs),
                            seconds=kept)
    return attrs.evolve(old, peak=max(old.peak, peak), samples=old.samples + 1, updated=now,
                        cap=cap if cap is not None else old.cap, inputs=_most(old.inputs, inputs),
                        seconds=kept)


def merge_oom(old: Entry | None, key: CalibrationKey, cap: int, *, now: float) -> Entry:
    """An OOM kill at ``cap``: the stage needs more than ``cap`` (a lower bound)."""
    bound = max(cap, old.peak if old is not None and old.source == OOM_CORRECTED else 0)
    return _new(key, bound, OOM_CORRECTED, samples=(old.samples + 1) if old else 1, updated=now,
                cap=cap, seconds=old.seconds if old is not None else None,
                inputs=old.inputs if old is not None else None)


def escalate(bound: int, *, factor: float, step: int) -> int:
    """The next footprint to try above an OOM bound: ``max(bound × factor, bound + step)``."""
    return max(math.ceil(bound * factor), bound + step)


@attrs.frozen(kw_only=True)
class Resolved:
    """A footprint resolved from calibration and the model.

    ``source``: ``model`` (no calibration), ``default`` (the stage declared nothing),
    ``measured`` or ``oom_corrected``; ``exhausted``: an OOM bound already at the ceiling.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    bytes: int
    source: str
    model: int
    calibrated: int | None = None
    bound: int | None = None
    exhausted: bool = False


def resolve(entry: Entry | None, model: int, *, ceiling: int, factor: float, step: int,
            model_source: str = "model", inputs: int | None = None,
            foreign: bool = False) -> Resolved:
    """The footprint to admit for a key with ``entry`` whose model estimate is ``model``.

    A measured peak lowers the footprint below the model's only for what it was measured
    on: not when the stage reads more bytes now (``inputs``) than any clean run of ``entry``
    read, nor when ``entry`` is ``foreign`` (kept under a broader key).
    """
    if entry is None or entry.source == DEFAULT:
        return Resolved(bytes=model, source=model_source, model=model)
    larger = foreign or (inputs is not None and entry.inputs is not None and inputs > entry.inputs)
    if entry.source == MEASURED:
        return Resolved(bytes=max(entry.peak, model) if larger else entry.peak, source=MEASURED,
                        model=model, calibrated=entry.peak)
    if entry.fits is not None:  # a clean run fitted since the kill: the bound has converged
        return Resolved(bytes=max(entry.peak, model), source=OOM_CORRECTED, model=model,
                        calibrated=entry.peak, bound=entry.peak)
    grown = max(escalate(entry.peak, factor=factor, step=step), model)
    if ceiling > 0 and grown > ceiling:
        if entry.peak >= ceiling:
            return Resolved(bytes=grown, source=OOM_CORRECTED, model=model, calibrated=grown,
                            bound=entry.peak, exhausted=True)
        grown = ceiling
    return Resolved(bytes=grown, source=OOM_CORRECTED, model=model, calibrated=grown,
                    bound=entry.peak)


# -- the store --------------------------------------------------------------------------


def peak_update(key: CalibrationKey, peak: int, cap: int | None, *, now: float,
                clean_share: float, seconds: float | None = None,
                inputs: int | None = None) -> dict[str, Any]:
    """A clean run's peak as an update :func:`apply_update` folds into an entry."""
    return {"op": "peak", **_key_fields(key), "peak": peak, "cap": cap, "now": now,
            "share": clean_share, "seconds": seconds, "inputs": inputs}


def oom_update(key: CalibrationKey, cap: int, *, now: float) -> dict[str, Any]:
    """An OOM kill at ``cap`` as an update :func:`apply_update` folds into an entry."""
    return {"op": "oom", **_key_fields(key), "cap": cap, "now": now}


def _key_fields(key: CalibrationKey) -> dict[str, Any]:
    return {"recipe": key.recipe, "stage": key.stage, "drivers": dict(key.drivers),
            "scope": dict(key.scope)}


def apply_update(old: Entry | None, update: Mapping[str, Any],
                 key: CalibrationKey | None = None) -> Entry:
    """``old`` with ``update`` (from :func:`peak_update` or :func:`oom_update`) merged in;
    ``key``: the update's key when the caller holds it (else it is read from the update)."""
    if key is None:
        key = CalibrationKey.of(str(update["recipe"]), str(update["stage"]),
                                {str(k): int(v) for k, v in update["drivers"].items()},
                                {str(k): str(v) for k, v in update["scope"].items()})
    if update["op"] == "oom":
        return merge_oom(old, key, int(update["cap"]), now=float(update["now"]))
    if update["op"] != "peak":
        raise ValueError(f"unknown update {update['op']!r}")
    cap, seconds, inputs = update.get("cap"), update.get("seconds"), update.get("inputs")
    return merge_peak(old, key, int(update["peak"]), None if cap is None else int(cap),
                      now=float(update["now"]), clean_share=float(update["share"]),
                      seconds=None if seconds is None else float(seconds),
                      inputs=None if inputs is None else int(inputs))


class CalibrationStore:
    """Entries by key text, kept in ``path`` (``None``: in memory only, for one run).

    On disk (see :mod:`blut_core.broker.caljournal`): a snapshot and a journal of updates,
    so that a flush appends what was learnt and a lookup parses only the key it asks for.
    """

    def __init__(self, path: Path | None, *, clean_share: float = 0.90,
                 flush_every: float = 0.0, fold_bytes: int = FOLD_BYTES) -> None:
        self.path = path
        self.clean_share = clean_share
        self.flush_every = flush_every
        self._files = CalibrationFiles(path, fold_bytes=fold_bytes) if path is not None else None
        self._loaded = path is None
        self._view: dict[str, Entry | None] = {}          # the keys looked up, as known now
        self._pending: list[tuple[str, dict[str, Any]]] = []  # updates not written yet
        self._pending_keys: set[str] = set()
        self._flushed = time.monotonic()
        self._generation = 0  # how many times an unreadable snapshot was set aside

    def check(self) -> None:
        """Raise a one-line :class:`ConfigError` now when the store's files (or its lock)
        cannot be written: a directory where a file belongs, a parent that is a file, or
        a place that cannot be written."""
        if self._files is not None:
            ensure_file_writable(self._files.path, what="calibration store", hint=_HINT)
            ensure_file_writable(self._files.journal, what="calibration store journal",
                                 hint=_HINT)
            ensure_file_writable(self._files.lock, what="calibration store lock", hint=_HINT)

    def get(self, key: CalibrationKey) -> Entry | None:
        return self._get(key.text)

    def entries(self) -> list[Entry]:
        self._load()
        while True:
            generation = self._generation
            keys = set(self._view) | {text for text, _ in self._pending}
            if self._files is not None:
                try:
                    keys |= self._files.keys()
                except Corrupt as exc:
                    self._set_aside(str(exc))
                    continue
            found = [self._get(k) for k in sorted(keys)]
            if generation == self._generation:  # nothing was set aside meanwhile
                break
        return sorted((e for e in found if e is not None), key=lambda e: e.key.text)

    def record_peak(self, key: CalibrationKey, peak: int, cap: int | None,
                    seconds: float | None = None, inputs: int | None = None) -> Entry:
        """Record a clean run's peak (and how long it took, and the bytes it read)."""
        return self._update(key, peak_update(key, peak, cap, now=time.time(),
                                             clean_share=self.clean_share, seconds=seconds,
                                             inputs=inputs))

    def record_oom(self, key: CalibrationKey, cap: int) -> Entry:
        """Record that the stage was OOM-killed at ``cap``."""
        return self._update(key, oom_update(key, cap, now=time.time()))

    def forget(self, match: Callable[[Entry], bool]) -> list[Entry]:
        """Remove the entries ``match`` selects; return them."""
        self.flush()
        files = self._files
        if files is None:
            gone = [e for e in self._view.values() if e is not None and match(e)]
            for e in gone:
                self._view.pop(e.key.text, None)
            return gone
        try:
            with files.locked():
                self._loaded = False
                self._view.clear()
                gone = [e for e in self.entries() if match(e)]
                if gone:
                    texts = {e.key.text for e in gone}
                    self._fold(drop=texts.__contains__, reload=False)
        except NotSaved as exc:
            raise ConfigError(f"calibration store {self.path} cannot be written: {exc}",
                              hint=_HINT) from None
        except OSError as exc:
            raise ConfigError(f"calibration store {self.path} cannot be used: {exc.strerror or exc}",
                              hint=_HINT) from None
        self._view.clear()
        return gone

    # -- plumbing -----------------------------------------------------------------------

    def _update(self, key: CalibrationKey, update: dict[str, Any]) -> Entry:
        """Merge now in memory; write to the files now, or batched when ``flush_every`` > 0."""
        entry = apply_update(self._get(key.text), update, key)
        self._view[key.text] = entry
        if self._files is not None:
            self._pending.append((key.text, update))
            self._pending_keys.add(key.text)
        if time.monotonic() - self._flushed >= self.flush_every:
            self.flush()
        return entry

    def flush(self) -> None:
        """Append the pending updates to the journal: one locked write and fsync.

        Updates are merges, replayed in the order they were written, so what another
        process recorded in the meantime is kept (peaks merge by max; OOM bounds by their
        rules). A journal grown past its share is folded into a new snapshot.
        """
        self._flushed = time.monotonic()
        files = self._files
        if not self._pending or files is None:
            return
        pending, self._pending = self._pending, []
        self._pending_keys.clear()
        lines = [key_line(text, update) for text, update in pending]
        needed, where, files.needed = sum(len(line) + 1 for line in lines), files.journal, 0
        try:
            with files.locked():
                try:
                    others, full = files.append(lines)
                    extra: list[str] = []
                except MustFold:  # no snapshot yet, or one in the old layout
                    others, full, extra = None, True, lines
                if full:
                    where = files.path
                    self._fold(extra=extra, reload=bool(extra))
                    others = None
        except NotSaved as exc:  # never fatal: this run goes on with what it learnt
            files.not_saved(exc.exc, exc.needed, files.path)
            return
        except OSError as exc:
            files.not_saved(exc, files.needed or needed, where)
            return
        self._loaded = True
        if others is None:  # folded, or read again: what was looked up is looked up again
            self._view.clear()
        else:
            for text in others:
                self._view.pop(text, None)

    def _fold(self, *, extra: Sequence[str] = (), drop: Callable[[str], bool] | None = None,
              reload: bool = True) -> None:
        """Fold the journal into a new snapshot (hold the lock); an unreadable snapshot is
        set aside first."""
        assert self._files is not None
        try:
            self._files.fold(self._settle, extra=extra, drop=drop, reload=reload)
        except Corrupt as exc:
            self._set_aside(str(exc))
            self._files.fold(self._settle, extra=extra, drop=drop)

    def _settle(self, text: str, value: Any, updates: list[str]) -> dict[str, Any] | None:
        entry = self._replay(text, value, updates)
        return None if entry is None else _plain(entry)

    def _replay(self, text: str, value: Any, updates: list[str]) -> Entry | None:
        """The entry of key ``text``: its snapshot ``value``, then its journal ``updates``.
        ``Corrupt`` when the snapshot's entry cannot be read; a bad update is skipped."""
        try:
            entry = None if value is None else _entry(json.loads(value) if isinstance(value, str)
                                                      else value)
        except (ValueError, TypeError, KeyError) as exc:
            raise Corrupt(f"entry {text!r}: {exc}") from None
        for raw in updates:
            try:
                entry = apply_update(entry, json.loads(raw))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                get_logger().warning("calibration_update_skipped", key=text, error=str(exc))
        return entry

    def _load(self) -> None:
        if self._loaded or self._files is None:
            return
        self._loaded = True
        try:
            self._files.load()
        except Corrupt as exc:
            self._set_aside(str(exc))

    def _set_aside(self, error: str) -> None:
        """Set an unreadable snapshot aside; what was looked up in it is looked up again."""
        assert self._files is not None
        self._files.set_aside(error)
        self._view.clear()
        self._generation += 1

    def _get(self, text: str) -> Entry | None:
        if text in self._view:
            return self._view[text]
        self._load()
        files = self._files
        entry = None
        if files is not None:
            try:
                entry = self._replay(text, *files.lookup(text))
            except Corrupt as exc:
                self._set_aside(str(exc))
                entry = None
            if text in self._pending_keys:  # recorded here, not written yet
                for pending_text, update in self._pending:
                    if pending_text == text:
                        entry = apply_update(entry, update)
        self._view[text] = entry
        return entry


def _plain(e: Entry) -> dict[str, Any]:
    return {"recipe": e.recipe, "stage": e.stage, "drivers": dict(e.drivers), "peak": e.peak,
            "source": e.source, "samples": e.samples, "updated": e.updated, "cap": e.cap,
            "seconds": e.seconds, **({"scope": dict(e.scope)} if e.scope else {}),
            **{k: v for k, v in (("fits", e.fits), ("inputs", e.inputs)) if v is not None}}


def _entry(v: Any) -> Entry:
    if not isinstance(v, dict) or v.get("source") not in RANK:
        raise ValueError(f"bad entry {v!r}")
    peak = v["peak"]
    if isinstance(peak, bool) or not isinstance(peak, int) or peak <= 0:
        raise ValueError(f"bad peak {peak!r}")
    drivers = v.get("drivers", {})
    scope = v.get("scope", {})
    if not isinstance(drivers, dict) or not isinstance(scope, dict):
        raise ValueError("bad drivers")
    return Entry(recipe=str(v["recipe"]), stage=str(v["stage"]),
                 drivers={str(k): int(x) for k, x in drivers.items()}, peak=peak,
                 source=v["source"], samples=int(v.get("samples", 1)),
                 updated=float(v.get("updated", 0.0)),
                 cap=int(v["cap"]) if v.get("cap") is not None else None,
                 seconds=float(v["seconds"]) if v.get("seconds") is not None else None,
                 scope={str(k): str(x) for k, x in scope.items()},
                 fits=int(v["fits"]) if v.get("fits") is not None else None,
                 inputs=int(v["inputs"]) if v.get("inputs") is not None else None)
