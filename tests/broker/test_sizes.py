"""Sizes users write, and the ones blut refuses."""

from __future__ import annotations

import math

import pytest

from blut_core import ConfigError, format_size, parse_size
from blut_core.model.sizes import GiB, KiB, MiB, TiB


@pytest.mark.parametrize(("text", "expected"), [
    ("512M", 512 * MiB), ("2G", 2 * GiB), ("1.5GiB", 3 * GiB // 2), ("64MiB", 64 * MiB),
    ("2GB", 2 * GiB), ("4k", 4 * KiB), ("1T", TiB), (" 3 Gi ", 3 * GiB), ("100", 100),
    ("100B", 100), (4096, 4096), (1.5, 2), (".5G", GiB // 2),
])
def test_accepted(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12Gb", "-1G", "0", "0G", "", "G", "1.2.3G", "12 GB extra", "1X",
                                 "nan", "inf", 0, -5, math.nan, math.inf, -1.0, True, None, [1],
                                 "5iB", "1Mb"])
def test_refused_with_one_line_and_a_hint(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_size(bad, what="memory")
    assert info.value.exit_code == 2
    assert "\n" not in info.value.message and info.value.message.startswith("memory:")
    assert info.value.hint


def test_bits_get_a_specific_hint() -> None:
    with pytest.raises(ConfigError) as info:
        parse_size("12Gb")
    assert "bits" in (info.value.hint or "")


def test_format() -> None:
    assert format_size(None) == "-"
    assert format_size(512) == "512 B"
    assert format_size(3 * GiB // 2) == "1.5 GiB"
