"""``blut metrics RUN``: what a run's stages reported with ``ctx.log``, per step and final.

Entry point ``cli-metrics``. Reads the run directory, so it works while the run is running.

Imported when the command is used: :mod:`blut_plugins.cli.metrics` registers it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from blut_core.cli import complete_runs, complete_stages, echo_json, json_option, table

if TYPE_CHECKING:
    from blut_core import App


@click.command(name="metrics")
@click.argument("run", shell_complete=complete_runs)
@click.option("--final", "final_only", is_flag=True, help="Only the last value of each metric.")
@click.option("--stage", help="Only this stage's metrics.", shell_complete=complete_stages)
@json_option
@click.pass_obj
def metrics_command(app: App, run: str, final_only: bool, stage: str | None, as_json: bool) -> None:
    """Metrics of RUN (id, unique prefix or 'latest'): every step, and the final values."""
    from blut_core.lineage import extract_run, final_metrics
    from blut_core.store import find_run

    lineage = extract_run(find_run(app.settings.runs_dir, run), cache_root=app.settings.cache_dir)
    steps = [{k: m[k] for k in ("stage", "attempt", "step", "name", "t", "final")}
             | {"value": m["value"] if m["value"] is not None else json.loads(m["text_value"] or "null")}
             for m in lineage.metrics if stage is None or m["stage"] == stage]
    final = {k: v for k, v in final_metrics(lineage).items()
             if stage is None or k.startswith(f"{stage}.")}
    if as_json:
        echo_json({"run_id": lineage.run_id, "final": final,
                   "steps": [] if final_only else steps})
        return
    if final_only:
        table([(k, v) for k, v in final.items()], ["METRIC", "FINAL"])
        return
    table([(s["stage"], s["attempt"], "-" if s["step"] is None else s["step"], s["name"],
            s["value"], "final" if s["final"] else "") for s in steps],
          ["STAGE", "ATTEMPT", "STEP", "METRIC", "VALUE", ""])
