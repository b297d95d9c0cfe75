"""Params files nested 100,000 deep, binary, or not UTF-8, and ``-p`` values nested as deep:
one line naming the file or value, exit 2, no run made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut_core import App
from tests.support.badbook import Cli, assert_one_line, no_run_made

DEEP = 100_000


@pytest.mark.parametrize(("name", "content", "message"), [
    ("deep-array.json", "[" * DEEP + "]" * DEEP, "nested more than 64 levels deep"),
    ("deep-object.json", '{"a":' * DEEP + "1" + "}" * DEEP, "nested more than 64 levels deep"),
    ("deep-array.toml", "a = " + "[" * DEEP + "]" * DEEP, "nested more than 64 levels deep"),
    ("deep-table.toml", "a = " + "{b = " * DEEP + "1" + "}" * DEEP, "nested more than 64 levels deep"),
    ("deep-shallow.json", '{"n":' * 70 + "1" + "}" * 70, "nested more than 64 levels deep"),
    ("binary.json", bytes(range(256)), "is binary (a NUL byte at offset 0)"),
    ("binary.toml", b"n = 1\n\x00\x01\x02", "is binary (a NUL byte at offset 6)"),
    ("utf16.toml", "n = 1\n".encode("utf-16"), "is binary"),
    ("latin1.toml", "what = 'ünï'\n".encode("latin-1"), "line 1: not UTF-8 text (byte 0xfc at offset 8)"),
    ("latin1.json", '{\n"what": "ü"}'.encode("latin-1"), "line 2: not UTF-8 text (byte 0xfc"),
    ("huge-int.json", '{"n": ' + "9" * 5000 + "}", "Exceeds the limit"),
    ("list.json", "[1, 2]", "the top level must be a table/object"),
])
def test_params_files_that_are_not_params(app: App, cli: Cli, blut_home: Path, tmp_path: Path,
                                          name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for command in ("run", "plan"):
        code, _, err = cli(app, command, "badbook:lookup", "--params", str(path))
        assert code == 2
        assert_one_line(err, f"params file {path}", message)
    no_run_made(blut_home)


def test_a_byte_order_mark_is_fine(app: App, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfwhat = 'sum'\n")
    code, out, err = cli(app, "plan", "badbook:lookup", "--params", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["stages"]


@pytest.mark.parametrize(("override", "message"), [
    ("what=" + "[" * DEEP + "]" * DEEP, None),        # not JSON that Python can read: a string
    ("what=" + "[" * 70 + "]" * 70, "bad -p value for 'what': nested more than 64 levels deep"),
    ("." .join(["a"] * 100) + "=1", "levels deep, more than the 64 params may nest"),
    ("a." * 63 + "b=[[1]]", "nested more than 64 levels deep"),
])
def test_deep_p_values(app: App, cli: Cli, override: str, message: str | None) -> None:
    code, _, err = cli(app, "plan", "badbook:lookup", "-p", override)
    assert code == 2
    if message is None:  # a string where a lookup key belongs: the recipe's KeyError, named
        assert_one_line(err, "recipe badbook:lookup", "what='[[[[")
    else:
        assert_one_line(err, message)
