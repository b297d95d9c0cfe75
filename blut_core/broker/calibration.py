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

The file (``$BLUT_HOME/calibration.json``) is written atomically under an ``flock``; a
corrupt file is set aside (``calibration.json.corrupt-<time>``) and rebuilt, never fatal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from blut_core.errors import ConfigError, free_bytes, is_disk_full
from blut_core.host.log import get_logger
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

    recipe: str
    stage: str
    drivers: tuple[tuple[str, int], ...] = ()
    scope: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, recipe: str, stage: str, drivers: Mapping[str, int],
           scope: Mapping[str, str] | None = None) -> CalibrationKey:
        return cls(recipe=recipe, stage=stage, drivers=tuple(sorted(drivers.items())),
                   scope=tuple(sorted((scope or {}).items())))

    @property
    def text(self) -> str:
        """``recipe|stage|a=1,b=2`` (``|inputs=…,params=…`` with a scope): how it is stored."""
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
    merged = _merge_peak(old, key, peak, cap, now=now, clean_share=clean_share, inputs=inputs)
    if seconds is None:
        return merged
    before = old.seconds if old is not None else None
    return attrs.evolve(merged, seconds=seconds if before is None else 0.5 * (before + seconds))


def _merge_peak(old: Entry | None, key: CalibrationKey, peak: int, cap: int | None, *,
                now: float, clean_share: float, inputs: int | None) -> Entry:
    if old is None or old.source == DEFAULT:
        return _new(key, peak, MEASURED, samples=(old.samples + 1) if old else 1, updated=now,
                    cap=cap, inputs=inputs)
    if old.source == OOM_CORRECTED:
        if cap is not None and peak < clean_share * cap:  # self-heal a stale bound
            return _new(key, peak, MEASURED, samples=old.samples + 1, updated=now, cap=cap,
                        inputs=inputs)
        return attrs.evolve(old, peak=max(old.peak, peak), samples=old.samples + 1, updated=now,
                            fits=_most(old.fits, cap), inputs=_most(old.inputs, inputs))
    return attrs.evolve(old, peak=max(old.peak, peak), samples=old.samples + 1, updated=now,
                        cap=cap if cap is not None else old.cap, inputs=_most(old.inputs, inputs))


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


class CalibrationStore:
    """Entries by key text, kept in ``path`` (``None``: in memory only, for one run)."""

    def __init__(self, path: Path | None, *, clean_share: float = 0.90,
                 flush_every: float = 0.0) -> None:
        self.path = path
        self.clean_share = clean_share
        self.flush_every = flush_every
        self._entries: dict[str, Entry] | None = None
        self._pending: list[tuple[str, Callable[[Entry | None], Entry]]] = []
        self._flushed = time.monotonic()

    def check(self) -> None:
        """Raise a one-line :class:`ConfigError` now when the store's file (or its lock)
        cannot be written: a directory where the file belongs, a parent that is a file, or
        a place that cannot be written."""
        if self.path is not None:
            ensure_file_writable(self.path, what="calibration store", hint=_HINT)
            ensure_file_writable(self._lock_path, what="calibration store lock", hint=_HINT)

    @property
    def _lock_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".lock")

    def get(self, key: CalibrationKey) -> Entry | None:
        return self._load().get(key.text)

    def entries(self) -> list[Entry]:
        return sorted(self._load().values(), key=lambda e: e.key.text)

    def record_peak(self, key: CalibrationKey, peak: int, cap: int | None,
                    seconds: float | None = None, inputs: int | None = None) -> Entry:
        """Record a clean run's peak (and how long it took, and the bytes it read)."""
        return self._update(key, lambda old: merge_peak(old, key, peak, cap, now=time.time(),
                                                        clean_share=self.clean_share,
                                                        seconds=seconds, inputs=inputs))

    def record_oom(self, key: CalibrationKey, cap: int) -> Entry:
        """Record that the stage was OOM-killed at ``cap``."""
        return self._update(key, lambda old: merge_oom(old, key, cap, now=time.time()))

    def forget(self, match: Callable[[Entry], bool]) -> list[Entry]:
        """Remove the entries ``match`` selects; return them."""
        try:
            fd = self._open_lock()
        except OSError as exc:
            raise ConfigError(f"calibration store {self.path} cannot be used: {exc.strerror or exc}",
                              hint=_HINT) from None
        with self._locked(fd):
            entries = self._read()
            gone = [e for e in entries.values() if match(e)]
            for e in gone:
                entries.pop(e.key.text, None)
            if gone:
                self._write(entries)
            self._entries = entries
        return gone

    # -- plumbing -----------------------------------------------------------------------

    def _update(self, key: CalibrationKey, merge: Callable[[Entry | None], Entry]) -> Entry:
        """Merge now in memory; write to the file now, or batched when ``flush_every`` > 0."""
        entries = self._load()
        entry = merge(entries.get(key.text))
        entries[key.text] = entry
        self._pending.append((key.text, merge))
        if time.monotonic() - self._flushed >= self.flush_every:
            self.flush()
        return entry

    def flush(self) -> None:
        """Apply the pending merges to the file in one locked read-merge-write.

        Merges are re-applied to what the file holds now, so records another process made
        in the meantime are kept (peaks merge by max; OOM bounds by their rules).
        """
        self._flushed = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            fd = self._open_lock()
        except OSError as exc:  # never fatal: this run goes on with what it learnt in memory
            get_logger().warning("calibration_not_saved", path=str(self.path), error=str(exc))
            return
        with self._locked(fd):
            entries = self._read()
            for text, merge in pending:
                entries[text] = merge(entries.get(text))
            self._write(entries)
            self._entries = entries

    def _load(self) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _open_lock(self) -> int | None:
        """The lock file, opened (``None``: in memory only); ``OSError`` when it cannot be."""
        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def _locked(self, fd: int | None) -> Iterator[None]:
        """Hold the lock ``fd`` (from :meth:`_open_lock`) exclusively; close it after."""
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Entry]:
        if self.path is None:
            return dict(self._entries or {})
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            get_logger().warning("calibration_unreadable", path=str(self.path), error=str(exc))
            return {}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
                raise ValueError("not a calibration file")
            return {k: _entry(v) for k, v in data["entries"].items()}
        except (ValueError, TypeError, KeyError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            get_logger().warning("calibration_corrupt", path=str(self.path),
                                 set_aside=str(aside), error=str(exc))
            return {}

    def _write(self, entries: Mapping[str, Entry]) -> None:
        if self.path is None:
            return
        data = {"version": VERSION, "entries": {k: _plain(e) for k, e in sorted(entries.items())}}
        text = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            full = {"needed_bytes": len(text), "free_bytes": free_bytes(self.path.parent),
                    "hint": "free space there; the old store is kept as it was"
                    } if is_disk_full(exc) else {}
            get_logger().warning("calibration_not_saved", path=str(self.path), error=str(exc),
                                 **full)


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
