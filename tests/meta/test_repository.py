"""Repository-wide invariants: cheap checks that keep the house honest."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import click
import pytest

from blut_core import hookspecs
from blut_core.manager import BlutPluginManager

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("Registration:", "Decision:", "Notification:", "Lifecycle:")


def hookspec_functions() -> dict[str, object]:
    return {n: f for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("blut_")}


def test_every_hook_states_its_kind_and_semantics() -> None:
    pm = BlutPluginManager()
    for name, fn in hookspec_functions().items():
        doc = inspect.getdoc(fn) or ""
        assert doc.startswith(KINDS), f"{name}: docstring must start with its kind"
        caller = getattr(pm.hook, name)
        opts = caller.spec.opts
        if doc.startswith("Registration:"):
            assert caller.spec.argnames == () and "Example::" in doc, name
        if doc.startswith("Decision:"):
            assert opts.get("firstresult"), name
        if doc.startswith("Lifecycle:"):
            assert opts.get("historic"), name
        assert "versionadded" in doc, f"{name}: say in which version it was added"
        assert "called" in doc.lower(), f"{name}: say when it is called"


def test_hook_reference_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools/gen_hook_docs.py"), "--check"])
    assert result.returncode == 0, "docs/plugins/hooks.md is stale: run python tools/gen_hook_docs.py"
    text = (ROOT / "docs/plugins/hooks.md").read_text()
    pm = BlutPluginManager()
    for name in hookspec_functions():
        argnames = ", ".join(getattr(pm.hook, name).spec.argnames)
        assert f"## `{name}({argnames})`" in text


def test_every_plugin_module_has_an_entry_point_and_back() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"]["blut.plugins"]
    modules = {p.stem for p in (ROOT / "blut_plugins").glob("*.py") if not p.stem.startswith("_")}
    targets = {v.split(":")[0].removeprefix("blut_plugins.") for v in declared.values()}
    assert modules - targets == set(), "modules without an entry point (re-run pip install -e .)"
    assert targets - modules == set(), "entry points naming missing modules"
    for name in declared:
        assert name == name.lower() and "_" not in name, f"entry point {name!r}: use kind-name"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_core_never_imports_plugins_cookbooks_or_packages() -> None:
    forbidden = ("blut_plugins", "blut_cookbook_", "blut_launcher_", "cookbooks", "packages")
    for path in (ROOT / "blut_core").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(forbidden)}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def _walk(cmd: click.Command, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    out = [prefix]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out += _walk(sub, (*prefix, name))
    return out


def test_every_command_answers_help(app, invoke) -> None:  # type: ignore[no-untyped-def]
    paths: list[tuple[str, ...]] = [()]
    for name, provided in app.registry.commands.items():
        paths += _walk(provided.item, (name,))
    assert len(paths) > 8
    for path in paths:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output


def test_read_commands_have_json(app) -> None:  # type: ignore[no-untyped-def]
    readers = {("plugins", "list"), ("recipes", "list"), ("recipes", "show"), ("plan",),
               ("runs", "list"), ("runs", "show")}
    for name, provided in app.registry.commands.items():
        for path in _walk(provided.item, (name,)):
            if path in readers:
                cmd = provided.item
                for part in path[1:]:
                    cmd = cmd.commands[part]  # type: ignore[attr-defined]
                assert any("--json" in p.opts for p in cmd.params), path


HEAVY = ["duckdb", "_duckdb", "structlog", "rich", "cattrs", "attrs", "psutil", "ray", "textual", "numpy"]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["runs", "--help"]])
def test_startup_imports_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    code = ("import sys, json\nfrom blut_core.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")
    env = {"BLUT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "BLUT_NO_STALE_CHECK": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stderr.strip().splitlines()[-1]) == []


def test_stage_runner_imports_nothing_heavy(tmp_path: Path) -> None:
    code = ("import sys, json\nimport blut_core.runner, blut_core.stagectx\n"
            "print(json.dumps(sorted(m for m in ('attrs', 'cattrs', 'click', 'pluggy', 'structlog') "
            "if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(r.stdout) == []


def test_every_shipped_recipe_builds_a_valid_plan(app) -> None:  # type: ignore[no-untyped-def]
    from blut_core.orchestrate import prepare

    refs = [r for r in app.cookbooks.recipes.values() if not r.qualname.startswith("testbook:")]
    assert refs, "no shipped cookbook is installed"
    for ref in refs:
        prepared = prepare(app, ref.qualname)
        assert len(prepared.plan) >= 1
        assert attrs.has(ref.recipe.params)
