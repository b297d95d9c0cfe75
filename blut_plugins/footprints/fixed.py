"""The ``fixed`` footprint model: the stage declares its peak memory outright.

Entry point ``footprint-fixed``. Declaration: ``{"memory": "2G"}`` (a size string or
bytes). Drivers, if any, only key the stage's calibration.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from blut_core import ConfigError, FootprintModel, hookimpl, parse_size

if TYPE_CHECKING:
    from blut_core import FootprintModelSpec


class FixedModel(FootprintModel):
    """``memory`` bytes, whatever the drivers."""

    name = "fixed"

    def check(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> None:
        """``spec`` must be exactly ``{"memory": SIZE}``."""
        extra = sorted(set(spec) - {"memory"})
        if extra:
            raise ConfigError(f"fixed footprint: unknown key(s) {', '.join(extra)}",
                              hint='declare {"memory": "2G"}')
        if "memory" not in spec:
            raise ConfigError("fixed footprint: 'memory' is missing", hint='declare {"memory": "2G"}')
        parse_size(spec["memory"], what="fixed footprint memory")

    def estimate(self, spec: Mapping[str, Any], drivers: Mapping[str, int]) -> int:
        """The declared ``memory`` in bytes."""
        return parse_size(spec["memory"], what="fixed footprint memory")


@hookimpl
def blut_footprint_models() -> Iterator[FootprintModelSpec]:
    """Registration: the ``fixed`` model."""
    from blut_core import FootprintModelSpec

    yield FootprintModelSpec(name="fixed", summary="The stage declares its peak memory.",
                             factory=FixedModel)
