"""The ``scaling`` footprint model: a base plus one declared term per driver.

Entry point ``footprint-scaling``. Declaration::

    {"base": "1G",
     "terms": {"workers": "2G",                          # workers × 2 GiB
               "workers*prefetch": "64M",                # workers × prefetch × 64 MiB
               "channels": {"per": "1G", "every": 21}}}  # ceil(channels / 21) × 1 GiB

Every term is a product of non-negative drivers times a positive size, so the estimate is
monotone non-decreasing in every driver; ``every`` rounds up, which keeps it
conservative-high.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from blut_core import ConfigError, FootprintModel, hookimpl, parse_size

if TYPE_CHECKING:
    from blut_core import FootprintModelSpec

_HINT = 'declare {"base": "1G", "terms": {"workers": "2G", "channels": {"per": "1G", "every": 21}}}'


def _term(key: str, value: Any) -> tuple[tuple[str, ...], int, int]:
    """(driver names, bytes per unit, divisor) of one term."""
    names = tuple(n.strip() for n in key.split("*"))
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"per", "every"})
        if extra or "per" not in value:
            raise ConfigError(f"scaling footprint term {key!r}: expected keys 'per' and "
                              f"optionally 'every', got {', '.join(sorted(value)) or 'none'}",
                              hint=_HINT)
        per = parse_size(value["per"], what=f"scaling footprint term {key!r}")
        every = value.get("every", 1)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"scaling footprint term {key!r}: 'every' must be a whole "
                              f"number ≥ 1, got {every!r}", hint=_HINT)
        return names, per, every
    return names, parse_size(value, what=f"scaling footprint term {key!r}"), 1


class ScalingModel(FootprintModel):
    """``base + Σ ceil(Π drivers / every) × per``."""

    name = "scaling"

    def check(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> None:
        """Known keys, valid sizes, and every term names declared drivers."""
        extra = sorted(set(spec) - {"base", "terms"})
        if extra:
            raise ConfigError(f"scaling footprint: unknown key(s) {', '.join(extra)}", hint=_HINT)
        if "base" not in spec:
            raise ConfigError("scaling footprint: 'base' is missing", hint=_HINT)
        parse_size(spec["base"], what="scaling footprint base")
        terms = spec.get("terms", {})
        if not isinstance(terms, Mapping):
            raise ConfigError("scaling footprint: 'terms' must be a mapping", hint=_HINT)
        for key, value in terms.items():
            names, _, _ = _term(str(key), value)
            unknown = [n for n in names if n not in drivers]
            if unknown:
                raise ConfigError(f"scaling footprint term {key!r}: unknown driver "
                                  f"{unknown[0]!r}",
                                  hint=f"declared drivers: {', '.join(drivers) or 'none'}")

    def estimate(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> int:
        """The formula's bytes for ``drivers``."""
        total = parse_size(spec["base"], what="scaling footprint base")
        for key, value in dict(spec.get("terms", {})).items():
            names, per, every = _term(str(key), value)
            units = math.prod(int(drivers[n]) for n in names)
            total += -(-units // every) * per
        return total


@hookimpl
def blut_footprint_models() -> Iterator[FootprintModelSpec]:
    """Registration: the ``scaling`` model."""
    from blut_core import FootprintModelSpec

    yield FootprintModelSpec(name="scaling", summary="A base plus declared per-driver terms.",
                             factory=ScalingModel)
