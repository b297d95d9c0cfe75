"""Memory sizes: parse what users write (``"512M"``, ``"1.5GiB"``, ``2147483648``), print them back.

Every unit is binary (``K`` = 1024): memory is sized in pages, and the conservative reading
of an ambiguous ``"2GB"`` is the larger one. ``b`` (bits) is refused rather than guessed.
"""

from __future__ import annotations

import math
import re
from typing import Any

from blut_core.errors import ConfigError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB, "p": 1024 * TiB}
_SIZE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgtpKMGTP]?)(?P<suffix>i?B?|iB)?\s*$")
_HINT = "write a positive size such as 512M, 2G, 1.5GiB or a number of bytes"


def parse_size(value: Any, *, what: str = "size") -> int:
    """``value`` as a positive number of bytes, or a one-line :class:`ConfigError`.

    Accepts ints (bytes), finite positive floats (rounded up) and strings made of a number
    and an optional unit ``K M G T P`` followed by ``i``, ``B`` or ``iB`` (all binary).
    Refuses zero, negatives, NaN, booleans and ``b`` (bits, as in ``"12Gb"``).
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size, got a boolean ({value!r})", hint=_HINT)
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"{what}: size must be positive, got {value}", hint=_HINT)
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{what}: size must be a positive finite number, got {value!r}",
                              hint=_HINT)
        return math.ceil(value)
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a size, got {type(value).__name__}", hint=_HINT)
    match = _SIZE.match(value)
    if match is not None and not match["unit"] and "i" in (match["suffix"] or ""):
        match = None
    if value.strip().startswith("-"):
        raise ConfigError(f"{what}: size must be positive, got {value!r}", hint=_HINT)
    if match is None:
        text = value.strip()
        if text.endswith("b") and text[:-1].rstrip("i")[-1:].lower() in set("kmgtp"):
            hint = f"'b' means bits; write {text[:-1]}B or {text[:-1].rstrip('i')} for bytes"
        else:
            hint = _HINT
        raise ConfigError(f"{what}: cannot read {value!r} as a size", hint=hint)
    number = float(match["num"])
    result = math.ceil(number * _UNITS[match["unit"].lower()])
    if result <= 0:
        raise ConfigError(f"{what}: size must be positive, got {value!r}", hint=_HINT)
    return result


def format_size(n: int | float | None) -> str:
    """``1610612736`` → ``"1.5 GiB"``; ``None`` → ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def parse_fraction(value: str, *, what: str) -> float:
    """A number in (0, 1]: ``"0.1"`` or ``"10%"``; a one-line :class:`ConfigError` otherwise."""
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and 0 < number <= 1):
        raise ConfigError(f"{what}: expected a fraction such as 0.1 or 10%, got {value!r}")
    return number


def human_seconds(s: float | None) -> str:
    """``75.0`` → ``"1m15s"``; ``None`` → ``"-"``."""
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.2f}s"
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"
