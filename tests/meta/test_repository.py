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

from blut_core.host import hookspecs
from blut_core.host.manager import BlutPluginManager

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


def _has_hookimpls(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    return any((isinstance(d, ast.Name) and d.id == "hookimpl")
               or (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "hookimpl")
               for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               for d in node.decorator_list)


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_plugin_module_has_an_entry_point_and_back() -> None:
    """A module with hooks is an entry point; helpers (no hooks) are private to their package."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"]["blut.plugins"]
    with_hooks = {_module_of(p) for p in (ROOT / "blut_plugins").rglob("*.py") if _has_hookimpls(p)}
    targets = {v.split(":")[0] for v in declared.values()}
    assert with_hooks - targets == set(), "modules with hooks but no entry point (re-run pip install -e .)"
    assert targets - with_hooks == set(), "entry points naming modules without hooks"
    for name in declared:
        assert name == name.lower() and "_" not in name, f"entry point {name!r}: use kind-name"
    flat = [p.name for p in (ROOT / "blut_plugins").glob("*.py") if p.name != "__init__.py"]
    assert flat == [], f"every built-in is a package of its own: {flat}"


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


#: What a core package may import: the packages below it (see blut_core/__init__.py).
LAYERS = {
    "model": {"model"},
    "host": {"host", "model"},
    "store": {"store", "host", "model"},
    "broker": {"broker", "store", "host", "model"},
    "lineage": {"lineage", "store", "host", "model"},
    "process": {"process", "store", "host", "model"},
    "run": {"run", "process", "broker", "lineage", "store", "host", "model"},
}
BOTTOM = {"errors", "_lazy", "_version"}


def test_core_packages_import_only_the_layers_below_them() -> None:
    for pkg, allowed in LAYERS.items():
        for path in (ROOT / "blut_core" / pkg).rglob("*.py"):
            for m in _imports(path):
                if m == "blut_core":
                    raise AssertionError(f"{path.relative_to(ROOT)} imports the facade; import the module")
                if m.startswith("blut_core."):
                    top = m.split(".")[1]
                    assert top in allowed | BOTTOM, f"{path.relative_to(ROOT)} imports {m} (layer {top})"
    for pkg in LAYERS:
        doc = ast.get_docstring(ast.parse((ROOT / "blut_core" / pkg / "__init__.py").read_text()))
        assert doc and "Owns" in doc and "mport" in doc, f"blut_core/{pkg}: say what it owns and may import"


def _facades() -> dict[str, set[str]]:
    """The public surface: ``blut_core`` and the documented facades, with their names."""
    import importlib

    out = {}
    for name in ["blut_core", *(f"blut_core.{p}" for p in (*LAYERS, "cli")), "blut_core.testing"]:
        module = importlib.import_module(name)
        out[name] = set(getattr(module, "__all__", ())) | {n for n in dir(module) if not n.startswith("_")}
    return out


def _outside_core() -> list[Path]:
    paths = list((ROOT / "blut_plugins").rglob("*.py"))
    for root in [*(ROOT / "packages").glob("*/src"), *(ROOT / "cookbooks").glob("*/src")]:
        paths += root.rglob("*.py")
    return paths


def test_plugins_packages_and_cookbooks_use_only_the_public_surface() -> None:
    facades = _facades()
    for path in _outside_core():
        tree = ast.parse(path.read_text(), filename=str(path))
        own = _module_of(path).split(".")[0:2] if path.is_relative_to(ROOT / "blut_plugins") else None
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod, names = node.module, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                mod, names = "", [a.name for a in node.names]
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for full in ([mod] if mod else names):
                if full.startswith("blut_core"):
                    assert full in facades, f"{where} imports {full}, not a public facade"
                if full.startswith("blut_plugins") and own is not None:
                    assert full.split(".")[:2] == own, f"{where}: a plugin imports another's module {full}"
            if mod in facades:
                private = [n for n in names if n not in facades[mod]]
                assert not private, f"{where} imports {private} from {mod}, which does not export them"


def test_facades_export_what_they_list() -> None:
    import importlib

    for name in _facades():
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            value = getattr(module, attr)
            assert not (isinstance(value, type(module)) and attr not in ("testing",)), \
                f"{name}.{attr} is a module, shadowing the export of the same name"


def test_no_module_is_over_500_lines() -> None:
    roots = [ROOT / "blut_core", ROOT / "blut_plugins", *(ROOT / "packages").glob("*/src"),
             *(ROOT / "cookbooks").glob("*/src")]
    long = {str(p.relative_to(ROOT)): n for r in roots for p in r.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}, f"split these modules: {long}"


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
    code = ("import sys, json\nimport blut_core.process.runner, blut_core.process.context\n"
            "print(json.dumps(sorted(m for m in ('attrs', 'cattrs', 'click', 'pluggy', 'structlog') "
            "if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(r.stdout) == []


def test_every_shipped_recipe_builds_a_valid_plan(app) -> None:  # type: ignore[no-untyped-def]
    from blut_core.run.orchestrate import prepare

    refs = [r for r in app.cookbooks.recipes.values() if not r.qualname.startswith("testbook:")]
    assert refs, "no shipped cookbook is installed"
    for ref in refs:
        prepared = prepare(app, ref.qualname)
        assert len(prepared.plan) >= 1
        assert attrs.has(ref.recipe.params)
