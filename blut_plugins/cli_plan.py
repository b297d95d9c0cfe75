"""``blut plan RECIPE``: the DAG a run would execute, with each stage's cache state.

Entry point ``cli-plan``. Nothing runs and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from blut_core import App, Cache, hookimpl
from blut_core.orchestrate import prepare
from blut_core.output import echo_json, json_option, recipe_options, table
from blut_core.planning import cache_states


@click.command(name="plan")
@click.argument("recipe")
@recipe_options
@click.option("--no-cache", is_flag=True, help="Show the plan as if nothing were cached.")
@json_option
@click.pass_obj
def plan_command(app: App, recipe: str, params_file: Path | None, overrides: tuple[str, ...],
                 no_cache: bool, as_json: bool) -> None:
    """Show the stages RECIPE would run, in order, and which are cached."""
    prepared = prepare(app, recipe, params_file=params_file, overrides=overrides)
    states = cache_states(prepared.plan, Cache(app.settings.cache_dir), no_cache=no_cache)
    stages = prepared.plan.topological()
    if as_json:
        echo_json({"recipe": prepared.ref.qualname, "params": prepared.params_data,
                   "stages": [{"name": s.name, "kind": s.kind, "version": s.version,
                               "inputs": list(s.inputs), "cache": states[s.name].state.value,
                               "cache_key": states[s.name].cache_key} for s in stages]})
        return
    click.echo(f"{prepared.ref.qualname}: {len(stages)} stages")
    table([(s.name, s.kind, ", ".join(s.inputs) or "-", states[s.name].state.value)
           for s in stages], ["STAGE", "KIND", "INPUTS", "CACHE"])


@hookimpl
def blut_commands() -> Iterator[click.Command]:
    yield plan_command
