"""From a stage's declaration to the footprint admission uses.

``footprint = calibration.resolve(key) or model.estimate(drivers)``: a measured peak
replaces the model's estimate, an OOM bound escalates it, and a stage that declares nothing
gets the documented default (:data:`blut_core.broker.config.DEFAULT_FOOTPRINT`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from blut_core.broker import calibration
from blut_core.broker.calibration import CalibrationKey, CalibrationStore, Resolved
from blut_core.broker.config import BrokerConfig
from blut_core.errors import BlutError, ConfigError
from blut_core.host.interfaces import FootprintModel

if TYPE_CHECKING:
    from blut_core.host.registry import Registry
    from blut_core.model.stage import Stage


class Estimator:
    """Footprints of one recipe's stages, from their models and the calibration store."""

    def __init__(self, registry: Registry, recipe: str, store: CalibrationStore,
                 config: BrokerConfig) -> None:
        self.registry = registry
        self.recipe = recipe
        self.store = store
        self.config = config
        self._models: dict[str, FootprintModel] = {}

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

    def key(self, stage: Stage, drivers: Mapping[str, int]) -> CalibrationKey:
        return CalibrationKey.of(self.recipe, stage.name, drivers)

    def resolve(self, stage: Stage, drivers: Mapping[str, int], *, box: int, floor: int) -> Resolved:
        """The footprint to admit ``stage`` at ``drivers`` on a box of ``box`` bytes."""
        entry = self.store.get(self.key(stage, drivers))
        model = self.model_bytes(stage, drivers)
        return calibration.resolve(entry, model, ceiling=max(0, box - floor),
                                   factor=self.config.escalation_factor,
                                   step=self.config.step_for(box),
                                   model_source="model" if stage.footprint else "default")

    def need_at(self, stage: Stage, *, box: int, floor: int) -> Callable[[Mapping[str, int]], int]:
        """``drivers → bytes`` for admission (calibration first, then the model)."""
        return lambda d: self.resolve(stage, d, box=box, floor=floor).bytes
