"""Generated bad input: never a traceback, always the documented exit code and form.

Hypothesis feeds the CLI (in-process, through ``blut_core.cli.main``) arbitrary ``-p``
values and keys, arbitrary params-file bytes, nested structures of any depth, ``--deadline``
values and command lines made of blut's own words and garbage. Every one must end in
``SystemExit`` with 0 (it was fine), 2 (bad input: ``Error: …`` then ``Hint: …``), or
click's help; where the documented rules say which, the exit code is checked exactly.
Nothing here runs a stage: ``plan`` validates exactly what ``run`` would.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections.abc import Iterator
from importlib import metadata as md
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blut_core import App, CookbookSpec, Plan, Recipe, Stage, hookimpl
from blut_core.cli import main
from blut_core.model.convert import MAX_DEPTH
from blut_core.testing import COOKBOOK_GROUP
from tests.core.conftest import TESTBOOK

PROPBOOK = md.EntryPoint(name="propbook", value="tests.core.test_bad_input_properties",
                         group=COOKBOOK_GROUP)

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# -- recipes ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Lookup:
    what: str = "count"


_TABLE = {"count": 1, "sum": 2}


def lookup(p: Lookup) -> Plan:
    return Plan.of(Stage.command("s", ["true"], params={"per": _TABLE[p.what]}))


@attrs.frozen(kw_only=True)
class Free:
    data: dict[str, Any] = attrs.field(factory=dict)


def free(p: Free) -> Plan:
    return Plan.of(Stage.command("s", ["true"], params={"data": p.data}))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="propbook", summary="Recipes for the property tests.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="lookup", summary="a table lookup by param", params=Lookup, build=lookup)
    yield Recipe(name="free", summary="a free-form dict param", params=Free, build=free)


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, PROPBOOK]


# -- the CLI, in-process ------------------------------------------------------------------


@attrs.frozen
class Outcome:
    code: int
    out: str
    err: str

    def check_form(self) -> None:
        """Exit 0, or 2 with ``Error: …`` first and ``Hint: …`` last (or click's help)."""
        assert "Traceback" not in self.err, self.err
        assert self.code in (0, 2), (self.code, self.err)
        if self.code == 2 and not self.err.startswith("Usage:"):
            lines = [ln for ln in self.err.splitlines() if ln.strip() and not ln.startswith("{")]
            assert lines and lines[0].startswith("Error: "), self.err
            assert lines[-1].startswith("Hint: "), self.err


def blut(app: App, *argv: str) -> Outcome:
    """``blut ARGV`` in-process: anything but ``SystemExit`` escapes and fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.raises(SystemExit) as info:
        main(list(argv), app=app)
    code = info.value.code
    return Outcome(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def structured(text: str) -> Any:
    """What a ``-p`` value becomes (the documented rule): a JSON literal, else the text."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# -- -p values and keys ---------------------------------------------------------------------

_FIELDS = ["n", "ratio", "verbose", "inner.size", "inner.label"]


@SETTINGS
@given(key=st.sampled_from(_FIELDS), value=st.text())
@example(key="inner.label", value="ünïcödé")
@example(key="n", value="9" * 5000)
@example(key="ratio", value="nan")
@example(key="ratio", value="1e999")
@example(key="verbose", value="[" * 100_000)
@example(key="inner.size", value='{"a": ' * 70 + "1" + "}" * 70)
def test_any_p_value(app: App, key: str, value: str) -> None:
    result = blut(app, "plan", "testbook:diamond", "-p", f"{key}={value}", "--json")
    result.check_form()
    if key == "inner.label":  # a str field takes any scalar; a list or table is refused
        parsed = structured(value)
        assert result.code == (2 if isinstance(parsed, (dict, list)) else 0), result.err
    if result.code == 0:
        assert json.loads(result.out)["stages"]
    else:
        assert key.split(".")[-1] in result.err or "-p" in result.err, result.err
    assert not app.settings.runs_dir.exists()


@SETTINGS
@given(key=st.text(), value=st.text(max_size=20))
@example(key="a" + ".a" * 100_000, value="1")
@example(key="=", value="")
@example(key=" ", value="x")
@example(key="a..b", value="1")
def test_any_p_key(app: App, key: str, value: str) -> None:
    result = blut(app, "plan", "testbook:diamond", "-p", f"{key}={value}")
    result.check_form()
    known = key.strip() in _FIELDS and "=" not in key
    if not known:  # a key that is no field, or no key at all, is bad input
        assert result.code == 2, result.out


@SETTINGS
@given(value=st.one_of(st.text(), st.sampled_from(["count", "sum", '"sum"', "1", "true", "null"])))
@example(value="ünïcödé")
def test_a_recipe_that_raises_on_a_param_is_named_with_it(app: App, value: str) -> None:
    result = blut(app, "plan", "propbook:lookup", "-p", f"what={value}")
    result.check_form()
    parsed = structured(value)
    if isinstance(parsed, (dict, list)):
        assert result.code == 2 and "what" in result.err
        return
    what = "True" if parsed is True else "False" if parsed is False else str(parsed)
    assert result.code == (0 if what in _TABLE else 2), result.err
    if result.code == 2:
        assert "recipe propbook:lookup cannot build its plan with what=" in result.err
        assert "KeyError" in result.err


# -- params files ---------------------------------------------------------------------------


@SETTINGS
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".json", ".toml", ".txt"]))
@example(content=b"\xff\xfe", suffix=".json")
@example(content=b"x = 1\x00", suffix=".toml")
@example(content="n = 'ü'".encode("latin-1"), suffix=".toml")
@example(content=b"[" * 100_000, suffix=".json")
@example(content=b"a = " + b"[" * 100_000, suffix=".toml")
@example(content=b"\xef\xbb\xbf{}", suffix=".json")
def test_any_params_file_bytes(app: App, content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"params{suffix}"
        path.write_bytes(content)
        result = blut(app, "plan", "testbook:diamond", "--params", str(path))
    result.check_form()
    if result.code == 2:
        assert str(path) in result.err or "params for" in result.err, result.err
    if b"\0" in content:
        assert result.code == 2 and "is binary" in result.err


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children,
                                                                      max_size=3),
    max_leaves=20)


@SETTINGS
@given(data=_JSON, suffix=st.sampled_from([".json", ".toml"]))
def test_any_params_structure(app: App, data: Any, suffix: str) -> None:
    """A free-form dict param takes any data nested at most MAX_DEPTH levels."""
    import tomllib

    doc = {"data": {"x": data}}
    if suffix == ".toml":
        text = _toml(doc)
        if text is None:
            return
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return
    else:
        text = json.dumps(doc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"params{suffix}"
        path.write_text(text, encoding="utf-8")
        result = blut(app, "plan", "propbook:free", "--params", str(path), "--json")
    result.check_form()
    assert result.code == 0, result.err


@SETTINGS
@given(levels=st.integers(min_value=1, max_value=200_000), kind=st.sampled_from("[{"),
       suffix=st.sampled_from([".json", ".toml"]))
@example(levels=MAX_DEPTH - 2, kind="[", suffix=".json")
@example(levels=MAX_DEPTH - 1, kind="{", suffix=".json")
@example(levels=100_000, kind="[", suffix=".toml")
def test_params_of_any_depth(app: App, levels: int, kind: str, suffix: str) -> None:
    """Nested deeper than MAX_DEPTH (counting the file's top table and ``data``): exit 2
    naming the file; otherwise accepted."""
    if kind == "[":
        inner = "[" * levels + "]" * levels
    else:
        inner = ('{"a": ' if suffix == ".json" else "{a = ") * levels + "1" + "}" * levels
    text = (f'{{"data": {{"x": {inner}}}}}' if suffix == ".json" else f"[data]\nx = {inner}\n")
    total = 2 + levels  # the top table, data, then the nested levels
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"params{suffix}"
        path.write_text(text, encoding="utf-8")
        result = blut(app, "plan", "propbook:free", "--params", str(path))
    result.check_form()
    if total > MAX_DEPTH:
        assert result.code == 2 and f"params file {path}" in result.err, result.err
        assert "nested more than" in result.err
    else:
        assert result.code == 0, result.err


def _toml(value: Any) -> str | None:
    """``value`` (a dict) as TOML inline values, or None where TOML cannot say it."""
    def inline(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or math.isfinite(v) else None
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            items = [inline(x) for x in v]
            return None if None in items else "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
        pairs = [(json.dumps(k), inline(x)) for k, x in v.items()]
        if any(x is None for _, x in pairs):
            return None
        return "{" + ", ".join(f"{k} = {x}" for k, x in pairs) + "}"

    lines = [f"{json.dumps(k)} = {inline(v)}" for k, v in value.items()]
    return None if any(ln.endswith("= None") for ln in lines) else "\n".join(lines) + "\n"


# -- --deadline and whole command lines ------------------------------------------------------


@SETTINGS
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12)))
@example(value="nan")
@example(value="inf")
@example(value="-1")
@example(value="0")
def test_any_deadline(app: App, value: str) -> None:
    """``run`` of a recipe that does not exist: the deadline is checked first, so a bad one
    is named; a good one gets as far as the unknown recipe. Exit 2 either way."""
    result = blut(app, "run", "no-such-recipe", "--deadline", value)
    result.check_form()
    assert result.code == 2
    try:
        seconds = float(value.strip())
        good = math.isfinite(seconds) and seconds > 0
    except ValueError:
        good = False
    if good:
        assert "unknown recipe 'no-such-recipe'" in result.err, result.err
    else:
        assert "'--deadline'" in result.err, result.err


_WORDS = ["plan", "recipes", "show", "list", "runs", "plugins", "run", "resume", "cancel",
          "lineage", "trace", "broker", "--json", "-p", "--params", "--deadline", "-j", "--jobs",
          "--no-cache", "--fail-fast", "--log-format", "json", "latest", "nope", "diamnod",
          "testbook:nope", "-x", "--", "=", "-p=x", "--json=1", "--help"]


@SETTINGS
@given(argv=st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=8)), max_size=6))
@example(argv=["rnu"])
@example(argv=["run"])
@example(argv=["run", "x", "-p"])
@example(argv=["runs", "lsit"])
def test_any_command_line(app: App, argv: list[str]) -> None:
    if "run" in argv or "resume" in argv:  # nothing here may start work: no real recipe or run
        assert not {"diamond", "testbook:diamond"} & set(argv)
    result = blut(app, *argv)
    assert "Traceback" not in result.err, result.err
    assert result.code in (0, 1, 2, 3), (result.code, result.err)
    if result.code == 2 and not result.err.startswith("Usage:") and "--help" not in argv:
        result.check_form()
