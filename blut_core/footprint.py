"""A stage's memory declaration: which footprint model estimates it, fed by which drivers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Footprint:
    """How a stage's peak memory is estimated.

    ``model`` names a registered footprint model (``fixed``, ``scaling``, or a plugin's);
    ``spec`` is that model's declaration (e.g. ``{"memory": "2G"}`` for ``fixed``);
    ``drivers`` are the values that determine memory (workers, batch, channels…) and form
    the stage's calibration key.
    """

    model: str = "fixed"
    spec: Mapping[str, Any] = attrs.field(factory=dict)
    drivers: Mapping[str, int] = attrs.field(factory=dict)
