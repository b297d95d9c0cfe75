"""Footprint models and declarations: values, monotonicity, and bad input."""

from __future__ import annotations

import itertools
import math

import pytest

from blut_core import ConfigError, Footprint, Knob
from blut_core.model.sizes import GiB, MiB
from blut_plugins.footprints.fixed import FixedModel
from blut_plugins.footprints.scaling import ScalingModel

SPEC = {"base": "1G", "terms": {"workers": "2G", "workers*prefetch": "64M", "batch": "16M",
                                "channels": {"per": "1G", "every": 21}}}
DRIVERS = {"workers": 2, "prefetch": 4, "batch": 32, "channels": 168}


def test_fixed() -> None:
    m = FixedModel()
    m.check({"memory": "2G"}, {})
    assert m.estimate({"memory": "2G"}, {"anything": 3}) == 2 * GiB


def test_scaling_value() -> None:
    m = ScalingModel()
    m.check(SPEC, DRIVERS)
    expected = GiB + 2 * 2 * GiB + 2 * 4 * 64 * MiB + 32 * 16 * MiB + math.ceil(168 / 21) * GiB
    assert m.estimate(SPEC, DRIVERS) == expected
    step = m.estimate(SPEC, {**DRIVERS, "channels": 22}) - m.estimate(SPEC, {**DRIVERS, "channels": 21})
    assert step == GiB


def test_scaling_is_monotone_in_every_driver() -> None:
    m = ScalingModel()
    for name in DRIVERS:
        previous = -1
        for value in range(0, 200, 7):
            now = m.estimate(SPEC, {**DRIVERS, name: value})
            assert now >= previous, (name, value)
            previous = now
    for w, p in itertools.product(range(5), range(5)):  # jointly, too
        assert m.estimate(SPEC, {**DRIVERS, "workers": w + 1, "prefetch": p}) >= \
            m.estimate(SPEC, {**DRIVERS, "workers": w, "prefetch": p})


@pytest.mark.parametrize(("spec", "drivers", "words"), [
    ({"base": "1G", "terms": {"wrokers": "1G"}}, {"workers": 1}, "unknown driver 'wrokers'"),
    ({"base": "12Gb"}, {}, "cannot read '12Gb'"),
    ({"base": "-1G"}, {}, "must be positive"),
    ({"base": 0}, {}, "must be positive"),
    ({"base": math.nan}, {}, "positive finite"),
    ({"base": "1G", "terms": {"a": {"per": "1G", "every": 0}}}, {"a": 1}, "'every'"),
    ({"base": "1G", "extra": 1}, {}, "unknown key"),
    ({"terms": {}}, {}, "'base' is missing"),
])
def test_scaling_bad_spec(spec: dict[str, object], drivers: dict[str, int], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScalingModel().check(spec, drivers)
    assert words in info.value.message


@pytest.mark.parametrize("spec", [{}, {"memory": "0"}, {"memory": "-1G"}, {"memory": "12Gb"},
                                  {"memory": math.nan}, {"memory": "1G", "mem": 1}])
def test_fixed_bad_spec(spec: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FixedModel().check(spec, {})


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"drivers": {"workers": -1}}, "must not be negative"),
    ({"drivers": {"workers": math.nan}}, "whole number"),
    ({"drivers": {"workers": 1.5}}, "whole number"),
    ({"drivers": {"workers": True}}, "whole number"),
    ({"drivers": {"bad name": 1}}, "not valid"),
    ({"drivers": {"workers": 2}, "knobs": {"batch": 1}}, "not one of the drivers"),
    ({"drivers": {"workers": 2}, "knobs": {"workers": 3}}, "above the requested"),
    ({"drivers": {"workers": 2}, "knobs": {"workers": Knob(minimum=2, maximum=1)}}, "below its minimum"),
    ({"model": "Not A Model"}, "not a valid model"),
])
def test_bad_declarations(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Footprint(**kwargs)  # type: ignore[arg-type]
    assert words in info.value.message


def test_requested_and_minimal() -> None:
    fp = Footprint.scaling("1G", {"workers": "1G"}, drivers={"workers": 8, "batch": 4},
                           knobs={"workers": Knob(minimum=2, maximum=6)})
    assert fp.requested() == {"batch": 4, "workers": 6}
    assert fp.minimal() == {"batch": 4, "workers": 2}
