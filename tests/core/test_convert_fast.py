"""The converter's short cuts give what the converter gives: a plan written without cattrs'
generated functions, and scalar params structured without cattrs, are the same data, and a
bad value is still reported field by field."""

from __future__ import annotations

import enum
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from blut_core import ConfigError, Footprint, Knob, Plan, RetryPolicy, Stage, Timeouts
from blut_core.model.convert import converter, structure, unstructure


class Colour(enum.Enum):
    RED = "red"


@attrs.frozen
class Inner:
    x: int = 1
    where: Path = Path("/tmp")


def _stages() -> list[Stage]:
    fp = Footprint(model="scaling", spec={"base": "1G", "terms": {"w": "2G"}},
                   drivers={"w": 4}, knobs={"w": Knob(minimum=1, maximum=3)})
    return [
        Stage.command("a", ["true", "x"], footprint=fp, inputs=["b"], raw=("k",),
                      params={"k": [1, (2, 3)], "p": {"x": None, "y": 1.5}, "c": Colour.RED,
                              "path": Path("/a/b"), "inner": Inner(), "s": {1, 2}},
                      env={"A": "1"}, expected_seconds=2.5),
        Stage.command("b", "echo hi", shell=True, footprint=Footprint.fixed("16M"),
                      retry=RetryPolicy(max_attempts=3, backoff="fixed", retry_on="any"),
                      timeouts=Timeouts(soft=3.0, hard=4.0), cache=False, version="7"),
        Stage.call("c", "some.module:fn"),
    ]


@pytest.mark.parametrize("stage", _stages(), ids=lambda s: s.name)
def test_a_stage_is_written_as_the_converter_writes_it(stage: Stage) -> None:
    assert stage.to_json() == converter().unstructure(stage)


def test_a_plan_json_is_the_converter_s() -> None:
    a = Stage.command("a", ["true"], params={"k": [1, [2, 3]], "p": {"x": None, "y": 1.5}},
                      inputs=["b"], raw=("k",))
    plan = Plan.of(a, *_stages()[1:])
    assert json.dumps(plan.to_json()) == json.dumps(
        [converter().unstructure(s) for s in plan.topological()])


@attrs.frozen(kw_only=True)
class Scalars:
    n: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    rate: float = 0.5
    on: bool = False
    name: str = "x"


@attrs.frozen(kw_only=True)
class Needs:
    n: int


@pytest.mark.parametrize("data", [{}, {"n": 3}, {"n": "4", "rate": "2", "on": "yes", "name": 5},
                                  {"n": 5.0, "rate": 1, "on": 1}])
def test_scalar_params_are_structured_as_the_converter_does(data: dict[str, Any]) -> None:
    assert structure(dict(data), Scalars, where="params") == converter().structure(data, Scalars)
    got = structure(dict(data), Scalars, where="params")
    assert unstructure(got) == converter().unstructure(got)


@pytest.mark.parametrize(("data", "words"), [
    ({"n": 0}, "n: must be >= 1, got 0"),
    ({"n": True}, "n:"),
    ({"n": "many"}, "n:"),
    ({"rate": "nan"}, "rate:"),
    ({"bogus": 1}, "unknown key(s) bogus (valid keys: n, rate, on, name)"),
])
def test_bad_scalar_params_are_still_named_field_by_field(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        structure(data, Scalars, where="params")
    assert words in str(err.value.message)


def test_a_required_param_missing_is_reported() -> None:
    with pytest.raises(ConfigError) as err:
        structure({}, Needs, where="params")
    assert "n: required field missing" in err.value.message


def test_a_one_stage_run_does_not_import_cattrs(tmp_path: Path) -> None:
    """Params of scalars and a plan of plain stages are written without cattrs: a run's
    start-up does not pay for importing it."""
    code = ("import sys\n"
            "from blut_core.model.convert import structure, unstructure\n"
            "from blut_core import Plan, Stage, Footprint\n"
            f"exec({_SCALARS_SRC!r})\n"
            "p = structure({'n': '3'}, Scalars, where='params')\n"
            "unstructure(p)\n"
            "Plan.of(Stage.command('a', ['true'], footprint=Footprint.fixed('16M'))).to_json()\n"
            "print('cattrs' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.strip() == "False", out.stderr


_SCALARS_SRC = '''
import attrs
@attrs.frozen(kw_only=True)
class Scalars:
    n: int = 2
    on: bool = False
'''
