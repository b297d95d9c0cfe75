"""``blut recipes list``, ``blut recipes show NAME`` and ``blut recipes new NAME``.

Entry point ``cli-recipes``. ``new`` scaffolds a cookbook distribution (templates in
:mod:`._scaffold`) that installs and passes its own tests as generated.

Imported when the command is used: :mod:`blut_plugins.cli.recipes` registers it.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blut_core.cli import complete_recipes, echo_json, json_option, table

if TYPE_CHECKING:
    from blut_core import App


@click.group(name="recipes")
def recipes_group() -> None:
    """List and describe the recipes installed cookbooks provide."""


@recipes_group.command(name="list")
@json_option
@click.pass_obj
def list_recipes(app: App, as_json: bool) -> None:
    """Every recipe, as cookbook:recipe, with its summary."""
    index = app.cookbooks
    refs = list(index.recipes.values())
    for record in index.failed:
        click.echo(f"blut: cookbook {record.name!r} ({record.distribution} {record.version}) is missing "
                   f"recipes: {record.error}; see `blut plugins list`", err=True)
    if as_json:
        echo_json([{"name": r.qualname, "cookbook": r.cookbook.name, "recipe": r.recipe.name,
                    "summary": r.recipe.summary, "distribution": r.distribution} for r in refs])
        return
    table([(r.qualname, r.recipe.summary) for r in refs], ["RECIPE", "SUMMARY"])


def describe_params(cls: type[Any], prefix: str = "") -> list[dict[str, Any]]:
    """Fields of a params class (nested attrs classes flattened to dotted keys)."""
    import attrs

    from blut_core.model import unstructure

    hints = typing.get_type_hints(cls)
    out: list[dict[str, Any]] = []
    for field in attrs.fields(cls):
        ftype = hints.get(field.name, field.type)
        key = f"{prefix}{field.name}"
        if isinstance(ftype, type) and attrs.has(ftype):
            out += describe_params(ftype, prefix=key + ".")
            continue
        if field.default is attrs.NOTHING:
            default: Any = None
            required = True
        else:
            required = False
            fdefault: Any = field.default
            default = fdefault.factory() if hasattr(fdefault, "factory") else fdefault
            default = unstructure(default)
        tname = ftype.__name__ if isinstance(ftype, type) else str(ftype).replace("typing.", "")
        out.append({"name": key, "type": tname, "default": default, "required": required,
                    "help": field.metadata.get("help", "")})
    return out


@recipes_group.command(name="show")
@click.argument("name", shell_complete=complete_recipes)
@json_option
@click.pass_obj
def show_recipe(app: App, name: str, as_json: bool) -> None:
    """A recipe's params: names, types, defaults and help."""
    ref = app.cookbooks.find(name)
    params = describe_params(ref.recipe.params)
    if as_json:
        echo_json({"name": ref.qualname, "summary": ref.recipe.summary,
                   "distribution": ref.distribution, "params": params})
        return
    click.echo(f"{ref.qualname}: {ref.recipe.summary}")
    click.echo(f"from {ref.distribution}\n")
    table([(p["name"], p["type"], "(required)" if p["required"] else repr(p["default"]), p["help"])
           for p in params], ["PARAM", "TYPE", "DEFAULT", "HELP"])


@recipes_group.command(name="new")
@click.argument("name")
@click.option("--path", "path", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Directory to write the distribution to (default: ./blut-cookbook-NAME).")
@json_option
@click.pass_obj
def new_cookbook(app: App, name: str, path: Path | None, as_json: bool) -> None:
    """Scaffold a cookbook distribution NAME: a pyproject with its entry point, the hooks, one
    recipe with declared footprints, and a test. It installs and passes its tests as written."""
    from blut_core import ConfigError
    from blut_plugins.cli import _scaffold

    cookbook, dist, package = _scaffold.check_name(name)
    taken = {r.name: r for r in app.cookbooks.records}
    if cookbook in taken:
        raise ConfigError(f"a cookbook named {cookbook!r} is already installed "
                          f"({taken[cookbook].distribution})",
                          hint="choose another name; `blut recipes list` shows what is installed")
    target = (path or Path.cwd() / dist).expanduser()
    written = _scaffold.write(target, _scaffold.render(cookbook, dist, package))
    if as_json:
        echo_json({"cookbook": cookbook, "distribution": dist, "package": package,
                   "path": str(target), "recipe": f"{cookbook}:example",
                   "files": [str(p.relative_to(target)) for p in written]})
        return
    click.echo(f"created {dist} in {target}:")
    for p in written:
        click.echo(f"  {p.relative_to(target)}")
    click.echo(f"\nnext:\n  pip install -e {target}\n  python -m pytest {target}\n"
               f"  blut run {cookbook}:example")
