"""From a stage's declaration to the footprint admission uses.

``footprint = calibration.resolve(key) or model.estimate(drivers)``: a measured peak
replaces the model's estimate, an OOM bound escalates it, and a stage that declares nothing
gets the documented default (:data:`blut_core.broker.config.DEFAULT_FOOTPRINT`).

The calibration key holds what drives the stage's memory: its declared drivers, or, for a
stage that declares none, its *scope*: a digest of its params and the size bucket (a half
power of two) of the bytes it reads, its inputs' outputs and the files and directories its
params name. A stage run on ten times the data is a different key, so the peak of a small
run never caps it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut_core.broker import calibration
from blut_core.broker.calibration import CalibrationKey, CalibrationStore, Resolved
from blut_core.broker.config import BrokerConfig
from blut_core.errors import BlutError, ConfigError
from blut_core.host.interfaces import FootprintModel
from blut_core.model.hashing import digest
from blut_core.model.sizes import format_size

if TYPE_CHECKING:
    from blut_core.host.registry import Registry
    from blut_core.model.stage import Stage


WALK_LIMIT = 10_000  # directory entries sized per path a param names


def size_bucket(n: int) -> str:
    """``n`` bytes rounded up to a half power of two, as a size: ``"1.4GiB"``."""
    if n <= 0:
        return "0B"
    return format_size(2 ** (math.ceil(2 * math.log2(n)) / 2)).replace(" ", "")


def params_digest(params: Mapping[str, Any]) -> str:
    """A short digest of a stage's params (its canonical JSON)."""
    try:
        return digest(dict(params))[:12]
    except (TypeError, ValueError):
        return digest(repr(sorted(params.items(), key=lambda kv: str(kv[0]))))[:12]


def tree_bytes(path: str, limit: int | None = None) -> int:
    """Bytes of the regular files at or under ``path`` (symlinks not followed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size if os.path.isfile(path) else 0
    total, seen, todo = 0, 0, [path]
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if limit is not None and seen > limit:
                        return total
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def _named_paths(params: Mapping[str, Any]) -> list[str]:
    """Params that name an existing file or directory (absolute, or with a separator)."""
    return sorted({v for v in params.values()
                   if isinstance(v, str) and 0 < len(v) < 4096 and "\0" not in v
                   and (os.path.isabs(v) or os.sep in v) and os.path.exists(v)})


class Estimator:
    """Footprints of one recipe's stages, from their models and the calibration store.

    ``outputs`` maps an upstream stage to its promoted output directory; a run's policy
    sets it, so that a stage's key and footprint follow the bytes it reads.
    """

    def __init__(self, registry: Registry, recipe: str, store: CalibrationStore,
                 config: BrokerConfig, outputs: Callable[[str], Path] | None = None) -> None:
        self.registry = registry
        self.recipe = recipe
        self.store = store
        self.config = config
        self.outputs = outputs
        self._models: dict[str, FootprintModel] = {}
        # per stage (the very stage object), once known: a stage's key never moves in a run
        self._bytes: dict[str, tuple[Stage, int | None]] = {}
        self._scopes: dict[str, tuple[Stage, dict[str, str]]] = {}
        # (stage name, drivers, with scope?) -> (stage, scope, key): resolved once per decision
        self._keys: dict[tuple[str, tuple[tuple[str, int], ...], bool],
                         tuple[Stage, dict[str, str], CalibrationKey]] = {}

    def model(self, stage: Stage) -> FootprintModel | None:
        """The stage's footprint model (``None``: it declares no footprint)."""
        fp = stage.footprint
        if fp is None:
            return None
        if fp.model not in self._models:
            if fp.model not in self.registry.footprint_models:
                raise ConfigError(f"stage {stage.name!r}: unknown footprint model {fp.model!r}",
                                  hint="installed: "
                                       + (", ".join(self.registry.footprint_models) or "none"))
            made = self.registry.footprint_models[fp.model].item.factory()
            if not isinstance(made, FootprintModel):
                raise ConfigError(f"footprint model {fp.model!r} did not produce a FootprintModel",
                                  hint="report this to its plugin's authors")
            self._models[fp.model] = made
        return self._models[fp.model]

    def check(self, stage: Stage) -> None:
        """Raise a one-line ConfigError naming the stage when its declaration is bad."""
        model = self.model(stage)
        if model is None or stage.footprint is None:
            return
        try:
            model.check(stage.footprint.spec, stage.footprint.drivers)
        except BlutError as exc:
            raise ConfigError(f"stage {stage.name!r}: {exc.message}", hint=exc.hint) from None

    def requested(self, stage: Stage) -> dict[str, int]:
        return stage.footprint.requested() if stage.footprint else {}

    def model_bytes(self, stage: Stage, drivers: Mapping[str, int]) -> int:
        """The model's estimate at ``drivers`` (the default for an undeclared stage)."""
        model = self.model(stage)
        if model is None or stage.footprint is None:
            return self.config.default_footprint
        try:
            value = int(model.estimate(stage.footprint.spec, drivers))
        except BlutError as exc:
            raise ConfigError(f"stage {stage.name!r}: {exc.message}", hint=exc.hint) from None
        if value <= 0:
            raise ConfigError(f"stage {stage.name!r}: footprint model {model.name!r} "
                              f"estimated {value} bytes", hint="a footprint must be positive")
        return value

    def input_bytes(self, stage: Stage) -> int | None:
        """Bytes ``stage`` reads: its inputs' outputs and what its params name.

        ``None`` when it reads nothing blut can see, or when an input's output is not known
        here (before a run, or before the input has run).
        """
        known = self._bytes.get(stage.name)
        if known is not None and known[0] is stage:
            return known[1]
        paths = _named_paths(stage.params)
        if not stage.inputs and not paths:
            self._bytes[stage.name] = (stage, None)
            return None
        total = 0
        for name in stage.inputs:
            out = self.outputs(name) if self.outputs is not None else None
            if out is None or not out.exists():
                return None
            total += tree_bytes(str(out))
        for path in paths:
            total += tree_bytes(path, WALK_LIMIT)
        self._bytes[stage.name] = (stage, total)
        return total

    def scope(self, stage: Stage) -> dict[str, str]:
        """What else drives the memory of a stage that declares no driver (its key's scope)."""
        known = self._scopes.get(stage.name)
        if known is not None and known[0] is stage:
            return known[1]
        if stage.footprint is not None and stage.footprint.drivers:
            return {}
        out: dict[str, str] = {}
        if stage.params:
            out["params"] = params_digest(stage.params)
        read = self.input_bytes(stage)
        if read is not None:
            out["inputs"] = size_bucket(read)
        if stage.name in self._bytes:  # what it reads is known: so is its scope, for good
            self._scopes[stage.name] = (stage, out)
        return out

    def key(self, stage: Stage, drivers: Mapping[str, int], *, scoped: bool = True) -> CalibrationKey:
        """The stage's calibration key at ``drivers`` (``scoped=False``: without its scope, as
        keys were kept before they had one)."""
        scope = self.scope(stage) if scoped else {}
        memo = (stage.name, tuple(drivers.items()), scoped)
        hit = self._keys.get(memo)
        if hit is not None and hit[0] is stage and hit[1] == scope:
            return hit[2]
        key = CalibrationKey.of(self.recipe, stage.name, drivers, scope)
        self._keys[memo] = (stage, scope, key)
        return key

    def resolve(self, stage: Stage, drivers: Mapping[str, int], *, box: int, floor: int) -> Resolved:
        """The footprint to admit ``stage`` at ``drivers`` on a box of ``box`` bytes."""
        key = self.key(stage, drivers)
        entry = self.store.get(key)
        foreign = False
        if entry is None and key.scope:  # kept before keys had scopes: not measured on this one
            entry = self.store.get(self.key(stage, drivers, scoped=False))
            foreign = entry is not None
        model = self.model_bytes(stage, drivers)
        return calibration.resolve(entry, model, ceiling=max(0, box - floor),
                                   factor=self.config.escalation_factor,
                                   step=self.config.step_for(box),
                                   model_source="model" if stage.footprint else "default",
                                   inputs=self.input_bytes(stage) if entry is not None else None,
                                   foreign=foreign)

    def need_at(self, stage: Stage, *, box: int, floor: int) -> Callable[[Mapping[str, int]], int]:
        """``drivers → bytes`` for admission (calibration first, then the model)."""
        return lambda d: self.resolve(stage, d, box=box, floor=floor).bytes
