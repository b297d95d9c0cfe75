"""The ``blut`` command tree for the docs site's CLI reference (docs/reference/cli.md).

blut's root group finds its sub-commands in a live App (``blut_commands``), which a docs
build does not have; :data:`cli` is the same root, with the commands blut's built-in plugins
register already attached, for mkdocs-click to walk. mkdocs.yml loads this file as a hook,
and :func:`on_config` puts ``tools/`` on ``sys.path`` so that ``:module: gen_cli_docs`` in
the page resolves. ``python tools/gen_cli_docs.py`` prints every command path, one a line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

HERE = Path(__file__).resolve().parent


def build() -> click.Group:
    """blut's root group with the built-in plugins' commands (no third-party ones)."""
    from blut_core.cli.root import cli as root
    from blut_core.host.app import App
    from blut_core.host.manager import make_plugin_manager
    from blut_core.host.settings import Settings
    from blut_core.testing.distributions import builtin_entry_points

    pm = make_plugin_manager(entry_points=builtin_entry_points(), cookbook_entry_points=[],
                             strict=True)
    app = App(pm, Settings.from_environ({}))
    commands = {name: provided.item for name, provided in sorted(app.registry.commands.items())}
    return click.Group(name="blut", commands=commands, params=list(root.params), help=root.help,
                       context_settings=dict(root.context_settings))


cli = build()


def paths(cmd: click.Command, prefix: tuple[str, ...] = ("blut",)) -> list[str]:
    out = [" ".join(prefix)]
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            out += paths(sub, (*prefix, name))
    return out


def on_config(config: Any) -> Any:
    """mkdocs hook: make this module importable as ``gen_cli_docs`` for mkdocs-click."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    sys.modules.setdefault("gen_cli_docs", sys.modules[__name__])
    return config


if __name__ == "__main__":
    print("\n".join(paths(cli)))
