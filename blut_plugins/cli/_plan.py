"""``blut plan RECIPE``: the DAG a run would execute, with each stage's cache state.

Entry point ``cli-plan``. Nothing runs and nothing is written.

Imported when the command is used: :mod:`blut_plugins.cli.plan` registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from blut_core.cli import complete_recipes, echo_json, json_option, recipe_options, table

if TYPE_CHECKING:
    from blut_core import App
    from blut_core.run import Prepared


@click.command(name="plan")
@click.argument("recipe", shell_complete=complete_recipes)
@recipe_options
@click.option("--no-cache", is_flag=True, help="Show the plan as if nothing were cached.")
@json_option
@click.pass_obj
def plan_command(app: App, recipe: str, params_file: Path | None, overrides: tuple[str, ...],
                 no_cache: bool, as_json: bool) -> None:
    """Show the stages RECIPE would run, in order, and which are cached."""
    from blut_core import Cache
    from blut_core.run import cache_states, prepare

    prepared = prepare(app, recipe, params_file=params_file, overrides=overrides)
    states = cache_states(prepared.plan, Cache(app.settings.cache_dir), no_cache=no_cache)
    stages = prepared.plan.topological()
    memory, warnings = _memory(app, prepared)
    for line in warnings:
        click.secho(f"WARNING: {line}", fg="yellow", bold=True, err=True)
    if as_json:
        echo_json({"recipe": prepared.ref.qualname, "params": prepared.params_data,
                   "stages": [{"name": s.name, "kind": s.kind, "version": s.version,
                               "inputs": list(s.inputs), "cache": states[s.name].state.value,
                               "cache_key": states[s.name].cache_key,
                               "memory": memory[s.name]} for s in stages],
                   "warnings": warnings})
        return
    click.echo(f"{prepared.ref.qualname}: {len(stages)} stages")
    table([(s.name, s.kind, ", ".join(s.inputs) or "-", states[s.name].state.value,
            _footprint_cell(memory[s.name])) for s in stages],
          ["STAGE", "KIND", "INPUTS", "CACHE", "MEMORY"])


def _memory(app: App, prepared: Prepared) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each stage's resolved footprint, and warnings: undeclared footprints, no containment."""
    from blut_core import Broker, format_size

    broker = Broker(app)
    memory = broker.footprints(prepared.plan, prepared.ref.qualname)
    warnings = [f"stage {name!r} declares no footprint: it is admitted at the default "
                f"{format_size(m['footprint_bytes'])} (declare Footprint(...) on the stage)"
                for name, m in memory.items() if not m["declared"]]
    if broker.selection.warning:
        warnings.append(broker.selection.warning)
    return memory, warnings


def _footprint_cell(m: dict[str, Any]) -> str:
    from blut_core import format_size

    text = format_size(m["footprint_bytes"])
    if not m["declared"]:
        return text + " (default: undeclared!)"
    return text if m["source"] == "model" else f"{text} ({m['source']})"
