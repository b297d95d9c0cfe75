"""Shell completion of what only blut knows: recipe names, run ids, stage names.

Command plugins pass these as ``shell_complete=`` of their arguments and options; click calls
them when the shell asks (``_BLUT_COMPLETE=bash_complete``, set up by
``eval "$(_BLUT_COMPLETE=bash_source blut)"``). Each reads only what it needs (the loaded
cookbooks, one directory listing, one ``plan.json``) and never raises: a completion that
cannot be computed offers nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from blut_core.host.app import App

__all__ = ["complete_recipes", "complete_runs", "complete_stages"]


def _app(ctx: click.Context) -> App | None:
    from blut_core.host.app import App

    obj = ctx.find_root().obj
    return obj if isinstance(obj, App) else None


def _items(pairs: list[tuple[str, str | None]], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(v, help=h) for v, h in pairs if v.startswith(incomplete)]


def complete_recipes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Installed recipes as ``cookbook:recipe``, and by bare name where that is unique."""
    try:
        app = _app(ctx)
        if app is None:
            return []
        refs = list(app.cookbooks.recipes.values())
        bare = [r.recipe.name for r in refs]
        pairs = [(r.qualname, r.recipe.summary) for r in refs]
        pairs += [(r.recipe.name, r.recipe.summary) for r in refs if bare.count(r.recipe.name) == 1]
        return _items(sorted(pairs), incomplete)
    except Exception:
        return []


def complete_runs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The run ids under ``$BLUT_HOME/runs``, newest first, after ``latest`` (when there is one)."""
    try:
        app = _app(ctx)
        if app is None:
            return []
        root = app.settings.runs_dir
        dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] \
            if root.is_dir() else []
        names = [p.name for p in sorted(dirs, key=_started, reverse=True)]
        latest: list[tuple[str, str | None]] = [("latest", "the newest run")] if names else []
        return _items([*latest, *((n, None) for n in names)], incomplete)
    except Exception:
        return []


def _started(run_dir: Path) -> tuple[str, float]:
    """Sort key: the id's timestamp (seconds), then when its plan was written (within one)."""
    try:
        written = (run_dir / "plan.json").stat().st_mtime
    except OSError:
        written = 0.0
    return run_dir.name[:15], written


def complete_stages(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The stages of the run named earlier on the command line (its ``run`` argument)."""
    try:
        app = _app(ctx)
        # completing an option's value, click stops parsing at that option: the arguments
        # before it are still in ctx.args
        ref = ctx.params.get("run") or next((a for a in ctx.args if not a.startswith("-")), None)
        if app is None or not isinstance(ref, str) or not ref:
            return []
        from blut_core.store.runs import find_run

        plan: Any = json.loads((find_run(app.settings.runs_dir, ref) / "plan.json").read_text())
        pairs = [(str(s["name"]), str(s.get("kind") or "") or None) for s in plan["stages"]]
        return _items(pairs, incomplete)
    except Exception:
        return []
