"""A stage's memory declaration: which footprint model estimates it, fed by which drivers.

``Footprint(model="fixed", spec={"memory": "2G"})`` declares a constant;
``Footprint(model="scaling", spec={"base": "1G", "terms": {"workers": "2G"}},
drivers={"workers": 4}, knobs={"workers": Knob(minimum=1)})`` declares a formula and lets
admission lower ``workers`` (down to 1) until the stage fits; the stage then runs with
exactly the admitted value (``ctx.knobs["workers"]``).

Generic checks (driver values, knob bounds) happen here, when the stage is built; the
model's own ``spec`` is checked by the model (``blut plan``, ``blut run``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from blut_core.errors import ConfigError
from blut_core.model.reprs import record_repr

_DRIVER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODEL = re.compile(r"^[a-z][a-z0-9_-]*$")


@attrs.frozen(kw_only=True)
class Knob:
    """A driver admission may lower to make a stage fit: never below ``minimum``.

    The driver's declared value is what the stage asks for; ``maximum`` (optional) caps it.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    minimum: int = 1
    maximum: int | None = None


def _check_model(_: object, __: object, value: str) -> None:
    if not isinstance(value, str) or not _MODEL.match(value):
        raise ConfigError(f"footprint model {value!r} is not a valid model name",
                          hint="use a registered model such as 'fixed' or 'scaling'")


def _driver_value(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"footprint driver {name!r}: expected a whole number, got {value!r}",
                          hint="drivers are counts such as workers=4 or batch=32")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ConfigError(f"footprint driver {name!r}: expected a whole number, got {value!r}",
                          hint="drivers are counts such as workers=4 or batch=32")
    result = int(value)
    if result < 0:
        raise ConfigError(f"footprint driver {name!r} must not be negative, got {result}",
                          hint="drivers are counts such as workers=4 or batch=32")
    return result


def _drivers(value: Mapping[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, raw in dict(value or {}).items():
        if not isinstance(name, str) or not _DRIVER.match(name):
            raise ConfigError(f"footprint driver name {name!r} is not valid",
                              hint="use letters, digits and '_', starting with a letter")
        out[name] = _driver_value(name, raw)
    return dict(sorted(out.items()))


def _knobs(value: Mapping[str, Knob | int] | None) -> dict[str, Knob]:
    out: dict[str, Knob] = {}
    for name, raw in dict(value or {}).items():
        knob = Knob(minimum=raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        if not isinstance(knob, Knob):
            raise ConfigError(f"footprint knob {name!r}: expected Knob(minimum=..) or an int, "
                              f"got {raw!r}")
        out[str(name)] = knob
    return out


@attrs.frozen(kw_only=True)
class Footprint:
    """How a stage's peak memory is estimated.

    ``model`` names a registered footprint model (``fixed``, ``scaling``, or a plugin's);
    ``spec`` is that model's declaration (e.g. ``{"memory": "2G"}`` for ``fixed``);
    ``drivers`` are the values that determine memory (workers, batch, channels…) and form
    the stage's calibration key; ``knobs`` name drivers admission may lower to fit.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    model: str = attrs.field(default="fixed", validator=_check_model)
    spec: Mapping[str, Any] = attrs.field(factory=dict)
    drivers: Mapping[str, int] = attrs.field(factory=dict, converter=_drivers)
    knobs: Mapping[str, Knob] = attrs.field(factory=dict, converter=_knobs)

    def __attrs_post_init__(self) -> None:
        for name, knob in self.knobs.items():
            if name not in self.drivers:
                raise ConfigError(f"footprint knob {name!r} is not one of the drivers",
                                  hint=f"drivers: {', '.join(self.drivers) or 'none'}")
            low = _driver_value(f"{name}.minimum", knob.minimum)
            if low > self.drivers[name]:
                raise ConfigError(f"footprint knob {name!r}: minimum {low} is above the "
                                  f"requested {self.drivers[name]}")
            if knob.maximum is not None and _driver_value(f"{name}.maximum", knob.maximum) < low:
                raise ConfigError(f"footprint knob {name!r}: maximum {knob.maximum} is below "
                                  f"its minimum {low}")

    @classmethod
    def fixed(cls, memory: str | int, **drivers: int) -> Footprint:
        """A constant declaration: ``Footprint.fixed("2G")``."""
        return cls(model="fixed", spec={"memory": memory}, drivers=drivers)

    @classmethod
    def scaling(cls, base: str | int, terms: Mapping[str, Any], *,
                drivers: Mapping[str, int], knobs: Mapping[str, Knob | int] | None = None
                ) -> Footprint:
        """A formula: ``base`` plus one term per driver (see the ``scaling`` model)."""
        return cls(model="scaling", spec={"base": base, "terms": dict(terms)},
                   drivers=drivers, knobs=dict(knobs or {}))

    def requested(self) -> dict[str, int]:
        """The driver values the stage asks for (knobs capped at their ``maximum``)."""
        out = dict(self.drivers)
        for name, knob in self.knobs.items():
            if knob.maximum is not None:
                out[name] = min(out[name], knob.maximum)
        return out

    def minimal(self) -> dict[str, int]:
        """The driver values at every knob's minimum: the least this stage can run with."""
        out = self.requested()
        for name, knob in self.knobs.items():
            out[name] = min(out[name], knob.minimum)
        return out
