"""Params: defaults, files, -p overrides, and errors that name the field."""

from __future__ import annotations

import json

import attrs
import pytest

from blut_core import ConfigError
from blut_core.model.convert import structure
from blut_core.run.orchestrate import prepare


def test_defaults_file_and_overrides_merge(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "p.toml"
    f.write_text("n = 4\n[inner]\nlabel = 'from-file'\n")
    prepared = prepare(app, "testbook:diamond", params_file=f, overrides=["inner.size=9", "ratio=0.25"])
    p = prepared.params
    assert (p.n, p.ratio, p.inner.size, p.inner.label, p.verbose) == (4, 0.25, 9, "from-file", False)


def test_json_params_file(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"n": 7, "verbose": True}))
    assert prepare(app, "diamond", params_file=f).params.n == 7


def test_bad_value_names_field_and_type(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        prepare(app, "diamond", overrides=["inner.size=big"])
    assert "inner.size" in err.value.message and "expected int" in err.value.message
    assert err.value.exit_code == 2


def test_every_bad_field_is_reported(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        prepare(app, "diamond", overrides=["n=x", "verbose=maybe"])
    text = err.value.message
    assert "n:" in text and "verbose:" in text


def test_unknown_key_lists_valid_ones(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        prepare(app, "diamond", overrides=["inner.colour=red"])
    assert "colour" in err.value.message and "size, label" in err.value.message


def test_bool_is_not_an_int(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="n"):
        prepare(app, "diamond", overrides=["n=true"])


def test_malformed_toml_names_file_and_line(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.toml"
    f.write_text("n = 1\nratio = = 2\n")
    with pytest.raises(ConfigError) as err:
        prepare(app, "diamond", params_file=f)
    assert str(f) in err.value.message and "line 2" in err.value.message


def test_malformed_json_names_file_and_line(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.json"
    f.write_text('{\n  "n": 1,\n  oops\n}')
    with pytest.raises(ConfigError) as err:
        prepare(app, "diamond", params_file=f)
    assert str(f) in err.value.message and "line 3" in err.value.message


def test_missing_params_file(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="cannot read params file"):
        prepare(app, "diamond", params_file=tmp_path / "nope.toml")


def test_malformed_override_syntax(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="key=value"):
        prepare(app, "diamond", overrides=["justakey"])


def test_unknown_recipe_suggests_close_names(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        prepare(app, "diamnod")
    assert "unknown recipe 'diamnod'" in err.value.message
    assert err.value.hint and "diamond" in err.value.hint


@attrs.frozen(kw_only=True)
class _Bounds:
    top: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    mode: str = attrs.field(default="a", validator=attrs.validators.in_(["a", "b"]))


@attrs.frozen(kw_only=True)
class _Checked:
    docs: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    bounds: _Bounds = attrs.field(factory=_Bounds)


def test_validator_failure_names_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        structure({"docs": 0}, _Checked, where="params")
    assert err.value.message == "invalid params: docs: must be >= 1, got 0"
    assert err.value.details == ()  # one line: no detail list
    assert err.value.exit_code == 2


def test_nested_validator_failure_names_the_dotted_path() -> None:
    with pytest.raises(ConfigError) as err:
        structure({"bounds": {"top": 0}}, _Checked, where="params")
    assert err.value.message == "invalid params: bounds.top: must be >= 1, got 0"
    with pytest.raises(ConfigError) as err:
        structure({"bounds": {"mode": "c"}}, _Checked, where="params")
    assert err.value.message.startswith("invalid params: bounds.mode: must be in ")


def test_validator_and_type_errors_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        structure({"docs": "x", "bounds": {"top": -1}}, _Checked, where="params")
    assert err.value.details == (
        "docs: invalid value (invalid literal for int() with base 10: 'x'), expected int",
        "bounds.top: must be >= 1, got -1",
    )
