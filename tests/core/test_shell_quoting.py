"""A shell stage never runs what a param (or a path) says.

Where a shell reads a placeholder, blut assigns the value, quoted, to a shell variable and
puts a reference to it in the script; ``raw=`` pastes a param as code on purpose. These tests
feed metacharacters, quotes, newlines and ``$()`` through every placeholder of real runs
(params, inputs, out, work, attempt, python: the paths carry them through a ``BLUT_HOME``
whose name is full of them) and through every quoting context of the script, under dash
and bash, and check that the values arrive as exactly that text and nothing extra ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata as md
from pathlib import Path

import attrs
import pytest

from blut_core import App, CookbookSpec, Plan, PlanError, Recipe, Settings, Stage, hookimpl
from blut_core.host.manager import BlutPluginManager
from blut_core.process.spec import render_shell, shell_script_index
from blut_core.run.orchestrate import prepare, start_run
from blut_core.testing import COOKBOOK_GROUP, installed_distribution
from tests.core.conftest import TESTBOOK
from tests.support.cli import ROOT, blut_argv

SHELLBOOK = md.EntryPoint(name="shellbook", value="tests.core.test_shell_quoting", group=COOKBOOK_GROUP)

#: Values that would run something, or split, glob, expand or end a here-document, if a shell
#: read them as code. ``{mark}`` is an absolute path: a file there means something ran.
NASTY = [
    "x; touch {mark}", "$(touch {mark})", "`touch {mark}`", "x && touch {mark}",
    "x | touch {mark}", "x\ntouch {mark}", "x\ntouch {mark}\n", "'; touch {mark}; '",
    "\"; touch {mark}; \"", "\\\"; touch {mark}; \\\"", "a'b\"c", "\\", "\\n", "*", "?", "~",
    "", " ", "  two  spaces ", "\t", "$HOME", "${HOME}", "$((1+1))", "-n", "--", "}", "{",
    "#x", "x #y", "EOF\ntouch {mark}\nEOF", "a[$(touch {mark})]", "ünïcödé ☃", "x\r\ny",
    "$'\\x41'", "!!", "%s%n",
]


def _values(mark: Path) -> list[str]:
    return [v.replace("{mark}", str(mark)) for v in NASTY]


# -- the cookbook these tests run -------------------------------------------------------


@attrs.frozen(kw_only=True)
class Msg:
    msg: str = "hello"


@attrs.frozen(kw_only=True)
class Probe:
    values: list[str] = attrs.field(factory=lambda: ["v"])
    words: str = "a b c"
    value: str = "v"


_EVERY_PLACEHOLDER = """\
printf '%s' {params[value]} > {out}/params.txt
printf '%s' "{params[value]}" > {out}/params-dq.txt
printf '%s' '{params[value]}' > {out}/params-sq.txt
printf '%s' pre{params[value]}post > {out}/params-word.txt
printf '%s' "$(printf '%s' {params[value]})" > {out}/params-subst.txt
cat > {out}/params-heredoc.txt <<EOF
{params[value]}
EOF
printf '%s' {inputs[up]} > {out}/inputs.txt
printf '%s' "{inputs[up]}" > {out}/inputs-dq.txt
printf '%s' {out} > {out}/out.txt
printf '%s' '{work}' > {out}/work.txt
printf '%s' {attempt} > {out}/attempt.txt
printf '%s' {python} > {out}/python.txt
[ $(( {attempt} + 1 )) -eq 2 ] && printf ok > {out}/arithmetic.txt
ls {inputs[up]}/ > {out}/listing.txt
"""


def issue(p: Msg) -> Plan:
    """The command of the reliability report, as its user wrote it."""
    return Plan.of(Stage.command("echo", "echo {params[msg]} > {out}/o.txt", shell=True,
                                 params={"msg": p.msg}, cache=False))


def every(p: Probe) -> Plan:
    """Per value: a shell stage using every placeholder, an argv stage and a bash -c stage."""
    stages = [Stage.command("up", ["sh", "-c", "echo up > {out}/up.txt"], cache=False)]
    for i, value in enumerate(p.values):
        stages += [
            Stage.command(f"probe{i}", _EVERY_PLACEHOLDER, shell=True, inputs=["up"],
                          cache=False, params={"value": value}),
            Stage.command(f"argv{i}", ["printf", "%s", "{params[value]}"], cache=False,
                          params={"value": value}),
            Stage.command(f"bash{i}", ["bash", "-euo", "pipefail", "-c",
                                       "printf '%s' {params[value]} > {out}/bash.txt"],
                          cache=False, params={"value": value})]
    stages.append(Stage.command(
        "raw", "{{ printf '%s|' {params[words]}; }} > {out}/raw.txt; "
               "{{ printf '%s|' {params[value]}; }} > {out}/quoted.txt",
        shell=True, cache=False, params={"words": p.words, "value": p.value}, raw=("words",)))
    return Plan.of(*stages)


RECIPES = (Recipe(name="issue", summary="the report's echo stage", params=Msg, build=issue),
           Recipe(name="every", summary="every placeholder in every context", params=Probe,
                  build=every))


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="shellbook", summary="Shell stages fed hostile values.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield from RECIPES


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, SHELLBOOK]


# -- real runs --------------------------------------------------------------------------

#: A directory name full of what a shell would act on. ``cd;touch PWNED`` needs no slash:
#: with ``HOME`` set to the marker directory it leaves a file there if it ever runs.
_HOSTILE_DIR = "h $(cd;touch PWNED) `cd;touch PWNED` ;cd;touch PWNED 'q' \"d\" \\ * ? \nnl #c"


def _hostile_app(plugin_manager: BlutPluginManager, tmp_path: Path) -> tuple[App, Path]:
    home = tmp_path / _HOSTILE_DIR / "home"
    return App(plugin_manager, Settings.from_environ({"BLUT_HOME": str(home)})), home


def _nothing_ran(tmp_path: Path) -> None:
    ran = [p for p in tmp_path.rglob("*PWNED*") if "PWNED" in p.name and p.name != _HOSTILE_DIR]
    assert ran == [], f"a value ran as shell code: {ran}"


def test_every_placeholder_arrives_as_its_text(plugin_manager: BlutPluginManager, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("HOME", str(marks))  # where `cd;touch PWNED` would land
    values = _values(marks / "PWNED-param")
    app, _ = _hostile_app(plugin_manager, tmp_path)
    summary = start_run(app, prepare(app, "shellbook:every",
                                     overrides=[f"values={json.dumps(values)}"]))
    assert summary.outcome == "ok", [(o.stage, o.error) for o in summary.stages if not o.ok]
    _nothing_ran(tmp_path)
    assert not any(marks.iterdir()), list(marks.iterdir())
    assert str(summary.run_dir).startswith(str(tmp_path / _HOSTILE_DIR))

    stages = summary.run_dir / "stages"
    up = stages / "up" / "out"
    for i, text in enumerate(values):
        out, attempt = stages / f"probe{i}" / "out", stages / f"probe{i}" / "attempts" / "1"
        seen = {f.stem: f.read_bytes().decode() for f in out.iterdir()}
        assert seen == {
            "params": text, "params-dq": text, "params-sq": text, "params-word": f"pre{text}post",
            "params-subst": text.rstrip("\n"),  # $(...) drops trailing newlines
            "params-heredoc": text + "\n",
            "inputs": str(up), "inputs-dq": str(up), "out": str(attempt / "out.tmp"),
            "work": str(attempt / "work"), "attempt": "1", "python": sys.executable,
            "arithmetic": "ok", "listing": "up.txt\n"}, (i, text)
        argv_log = stages / f"argv{i}" / "attempts" / "1" / "stdout.log"
        assert argv_log.read_bytes().decode() == text  # an argv list has no shell: the value as it is
        assert (stages / f"bash{i}" / "out" / "bash.txt").read_bytes().decode() == text


def test_raw_pastes_a_param_as_shell_code_and_only_that_one(app: App, tmp_path: Path) -> None:
    mark, other = tmp_path / "RAN", tmp_path / "QUOTED-RAN"
    summary = start_run(app, prepare(app, "shellbook:every", overrides=[
        _param("words", f"a b c; touch {mark}"), _param("value", f"x y; touch {other}")]))
    assert summary.outcome == "ok", [(o.stage, o.error) for o in summary.stages if not o.ok]
    out = summary.run_dir / "stages" / "raw" / "out"
    # raw: split into words, and the `;` ran the touch (that is what raw is for) ...
    assert (out / "raw.txt").read_text() == "a|b|c|"
    assert mark.exists()
    # ... while the stage's other param stays one word of data
    assert (out / "quoted.txt").read_text() == f"x y; touch {other}|"
    assert not other.exists()


def _param(key: str, text: str) -> str:
    """``-p key=TEXT`` that gives the param exactly ``text`` (a JSON string literal)."""
    return f"{key}={json.dumps(text)}"


def test_raw_must_name_a_param() -> None:
    with pytest.raises(PlanError, match="raw names 'nope', not a param"):
        Stage.command("s", "echo {params[a]}", shell=True, params={"a": 1}, raw=("nope",))


def test_raw_is_part_of_the_cache_key_and_absent_otherwise() -> None:
    quoted = Stage.command("s", "echo {params[a]}", shell=True, params={"a": "x y"})
    raw = Stage.command("s", "echo {params[a]}", shell=True, params={"a": "x y"}, raw=("a",))
    assert "raw" not in quoted.identity()  # cache keys of existing stages do not change
    assert raw.identity()["raw"] == ["a"] and raw.identity() != quoted.identity()


def test_the_reported_command_writes_the_param_and_runs_nothing(tmp_path: Path) -> None:
    """The report: `-p 'msg=x; touch PWNED'` created PWNED. Through the console script."""
    site = installed_distribution(tmp_path / "site", "blut-shellbook", "0",
                                  {"blut.cookbooks": {"shellbook": SHELLBOOK.value}})
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "BLUT_HOME": str(tmp_path / "home"), "BLUT_NO_STALE_CHECK": "1",
           "HOME": str(marks), "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    for msg in ("x; touch PWNED", "x; cd; touch PWNED", "$(cd; touch PWNED)", "x\ncd; touch PWNED"):
        r = subprocess.run([*blut_argv(), "run", "shellbook:issue", "-p", f"msg={msg}", "--json",
                            "--no-progress"], capture_output=True, text=True, env=env,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        run_dir = Path(json.loads(r.stdout)["run_dir"])
        assert (run_dir / "stages/echo/out/o.txt").read_text() == msg + "\n"
        assert list(marks.iterdir()) == [] and not (tmp_path / "PWNED").exists()
        assert not list((run_dir / "stages/echo/attempts").rglob("PWNED"))


# -- every quoting context, under dash and bash ------------------------------------------

_CONTEXTS = {  # template -> what the command prints for value V
    "unquoted": ("printf '%s' {params[v]}", "{v}"),
    "double quotes": ('printf "%s" "{params[v]}"', "{v}"),
    "single quotes": ("printf '%s' '{params[v]}'", "{v}"),
    "in a word": ("printf '%s' a{params[v]}b", "a{v}b"),
    "in $()": ('printf "%s" "$(printf "%s" {params[v]})"', "{v_subst}"),
    "in backticks": ("x=`printf '%s' {params[v]}`; printf '%s' \"$x\"", "{v_subst}"),
    "here-document": ("cat <<EOF\n{params[v]}\nEOF", "{v}\n"),
    "indented here-document": ("cat <<-END\n\t{params[v]}\n\tEND", "{v}\n"),
    "after a comment": ("# {params[v]}\nprintf '%s' {params[v]}", "{v}"),
    "${...:-}": ('printf "%s" "${{NOT_SET_X:-{params[v]}}}"', "{v}"),
    "function body": ("f() {{ printf '%s' {params[v]}; }}; f", "{v}"),
    "case word": ("case {params[v]} in *) printf '%s' {params[v]};; esac", "{v}"),
    "assignment": ("x={params[v]}; printf '%s' \"$x\"", "{v}"),
    "twice": ("printf '%s' {params[v]}{params[v]}", "{v}{v}"),
}


@pytest.mark.parametrize("shell", ["dash", "bash"])
@pytest.mark.parametrize("context", sorted(_CONTEXTS))
def test_every_quoting_context_keeps_values_data(shell: str, context: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    template, expect = _CONTEXTS[context]
    for value in _values(tmp_path / "PWNED"):
        script = render_shell(template, {"params": {"v": value}})
        r = subprocess.run([shell, "-c", script], capture_output=True, cwd=tmp_path)
        printed = r.stdout.decode()  # as bytes: text mode would turn \r\n into \n
        subst = value.rstrip("\n")
        assert printed == expect.format(v=value, v_subst=subst), (context, value, script, r.stderr)
        assert not (tmp_path / "PWNED").exists(), (context, value, script)


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_arithmetic_takes_integers_and_stops_on_anything_else(shell: str, tmp_path: Path) -> None:
    """bash evaluates what it expands inside arithmetic (``a[$(cmd)]`` runs cmd), so only
    digits are written there; any other value stops the script saying which placeholder."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    for template in ("echo $(( {params[v]} + 1 ))", "(( {params[v]} + 1 )) && echo ran"):
        if shell == "dash" and template.startswith("(("):
            continue  # not POSIX
        ok = subprocess.run([shell, "-c", render_shell(template, {"params": {"v": 41}})],
                            capture_output=True, text=True, cwd=tmp_path)
        assert ok.stdout.strip() in ("42", "ran"), ok.stderr
        for value in (f"a[$(touch {tmp_path}/PWNED)]", "1; touch PWNED", "1 + 1"):
            bad = subprocess.run([shell, "-c", render_shell(template, {"params": {"v": value}})],
                                 capture_output=True, text=True, cwd=tmp_path)
            assert bad.returncode != 0 and "params[v] is not an integer" in bad.stderr
            assert not (tmp_path / "PWNED").exists(), (template, value)


def test_a_script_without_placeholders_is_left_as_written() -> None:
    assert render_shell("echo $HOME {{x}}", {"params": {}}) == "echo $HOME {x}"


def test_which_argv_item_a_shell_reads_as_its_script() -> None:
    assert shell_script_index(Stage.command("s", "true", shell=True).argv or ()) == 2
    assert shell_script_index(["bash", "-euo", "pipefail", "-c", "x"]) == 4
    assert shell_script_index(["/bin/bash", "-ec", "x", "arg0"]) == 2
    assert shell_script_index(["env", "A=1", "zsh", "-c", "x"]) == 4
    assert shell_script_index(["bash", "script.sh"]) is None
    assert shell_script_index(["python3", "-c", "print(1)"]) is None
    assert shell_script_index(["sh", "-c"]) is None
