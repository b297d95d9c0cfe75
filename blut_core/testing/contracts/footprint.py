"""The contract every footprint model keeps, as a pytest class to subclass.

::

    from blut_core.testing.contracts import BadDeclaration, FootprintExample, FootprintModelContract

    class TestMyModel(FootprintModelContract):
        def make_model(self):
            return MyModel()

        def examples(self):
            # declarations of stages whose peak was measured (e.g. with `blut broker calibrate`)
            return [FootprintExample(spec={...}, drivers={"workers": 4}, peak="1.7G")]

        def bad_declarations(self):
            return [BadDeclaration(spec={"nonsense": 1}, drivers={}, message="unknown key")]

What is checked: the model has a valid name; it accepts every example and estimates a
positive whole number of bytes, the same every time; the estimate is monotone non-decreasing
in every driver (right-sizing lowers a driver and relies on the estimate going down with it,
never up); it is conservative on the declared examples (never below the measured peak); and
each bad declaration is rejected by ``check`` with a one-line :class:`~blut_core.errors.BlutError`
(plus a hint) that says what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest

from blut_core.errors import BlutError
from blut_core.host.interfaces import FootprintModel
from blut_core.model.reprs import record_repr
from blut_core.model.sizes import format_size, parse_size

__all__ = ["BadDeclaration", "FootprintExample", "FootprintModelContract"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
#: the multiples of each example's driver values the monotonicity test walks through
_SCALES = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 10.0, 100.0)


@attrs.frozen(kw_only=True)
class FootprintExample:
    """A declaration, the drivers a stage ran with, and the peak it was measured at."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    spec: Mapping[str, Any]
    drivers: Mapping[str, int] = attrs.field(factory=dict)
    peak: int | str = 0
    note: str = ""

    @property
    def peak_bytes(self) -> int:
        return parse_size(self.peak, what="footprint example peak")

    def label(self) -> str:
        drivers = ", ".join(f"{k}={v}" for k, v in self.drivers.items()) or "no drivers"
        return self.note or f"{dict(self.spec)} at {drivers}"


@attrs.frozen(kw_only=True)
class BadDeclaration:
    """A declaration the model must refuse, and a piece of the one-line message it gives."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    spec: Mapping[str, Any]
    drivers: Mapping[str, int] = attrs.field(factory=dict)
    message: str = ""


class FootprintModelContract:
    """Tests a footprint model keeps; subclass, implement :meth:`make_model` and
    :meth:`examples`, and list :meth:`bad_declarations`."""

    def make_model(self) -> FootprintModel:
        """The model under test (a fresh instance)."""
        raise NotImplementedError("implement make_model() in your test class")

    def examples(self) -> Sequence[FootprintExample]:
        """Declarations with their measured peaks (at least one)."""
        raise NotImplementedError("implement examples() in your test class")

    def bad_declarations(self) -> Sequence[BadDeclaration]:
        """Declarations the model must refuse."""
        return ()

    @pytest.fixture
    def model(self) -> FootprintModel:
        made = self.make_model()
        assert isinstance(made, FootprintModel), f"{made!r} is not a FootprintModel"
        return made

    def _estimate(self, model: FootprintModel, spec: Mapping[str, Any],
                  drivers: Mapping[str, int]) -> int:
        value = model.estimate(spec, drivers)
        assert isinstance(value, int) and not isinstance(value, bool), \
            f"estimate({dict(spec)}, {dict(drivers)}) returned {value!r}, not an int of bytes"
        return value

    def test_has_a_valid_name(self, model: FootprintModel) -> None:
        assert _NAME.match(model.name or ""), f"model name {model.name!r}: lower case, digits, '-', '_'"

    def test_accepts_its_examples_with_a_positive_stable_estimate(self, model: FootprintModel) -> None:
        examples = list(self.examples())
        assert examples, "declare at least one example"
        for ex in examples:
            model.check(ex.spec, ex.drivers)
            first = self._estimate(model, ex.spec, ex.drivers)
            assert first > 0, f"{ex.label()}: estimated {first} bytes"
            assert self._estimate(model, ex.spec, ex.drivers) == first, f"{ex.label()}: not stable"

    def test_is_monotone_in_every_driver(self, model: FootprintModel) -> None:
        for ex in self.examples():
            for name, value in ex.drivers.items():
                values = sorted({int(value * s) for s in _SCALES} | {value, value + 1})
                last: tuple[int, int] | None = None
                for v in values:
                    drivers = {**ex.drivers, name: v}
                    got = self._estimate(model, ex.spec, drivers)
                    if last is not None:
                        assert got >= last[1], \
                            f"{ex.label()}: {name}={v} estimates {format_size(got)}, less than " \
                            f"{format_size(last[1])} at {name}={last[0]}"
                    last = (v, got)
            if ex.drivers:
                base = self._estimate(model, ex.spec, ex.drivers)
                doubled = {k: 2 * v for k, v in ex.drivers.items()}
                assert self._estimate(model, ex.spec, doubled) >= base, \
                    f"{ex.label()}: doubling every driver lowered the estimate"

    def test_is_conservative_on_its_examples(self, model: FootprintModel) -> None:
        for ex in self.examples():
            got = self._estimate(model, ex.spec, ex.drivers)
            assert got >= ex.peak_bytes, \
                f"{ex.label()}: estimated {format_size(got)}, below the measured peak " \
                f"{format_size(ex.peak_bytes)}"

    def test_rejects_bad_declarations_in_one_line(self, model: FootprintModel) -> None:
        bad = list(self.bad_declarations())
        if not bad:
            pytest.skip("no bad declarations listed (bad_declarations())")
        for decl in bad:
            with pytest.raises(BlutError) as info:
                model.check(decl.spec, decl.drivers)
            err = info.value
            assert err.message.strip() and "\n" not in err.message, \
                f"{dict(decl.spec)}: message is not one line: {err.message!r}"
            assert decl.message in err.message, \
                f"{dict(decl.spec)}: {err.message!r} does not say {decl.message!r}"
            assert err.hint and "\n" not in err.hint, f"{dict(decl.spec)}: give a one-line hint"
            assert err.exit_code == 2, f"{dict(decl.spec)}: a bad declaration is a usage error"
