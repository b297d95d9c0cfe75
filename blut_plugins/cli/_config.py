"""``blut config show``: every setting, its value, and where it comes from.

Entry point ``cli-config``. A setting comes from its default, from a ``blut.toml`` (the
user's, or the project's found from the current directory; ``FILE:LINE``), or from its
``BLUT_*`` variable, which wins. A bad file is the one-line error every command gives (exit 2).

Imported when the command is used: :mod:`blut_plugins.cli.config` registers it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from blut_core.cli import echo_json, json_option, table

if TYPE_CHECKING:
    from blut_core import App
    from blut_core.host import Config, ConfigValue


@click.group(name="config")
def config_group() -> None:
    """Inspect blut's settings (blut.toml files and BLUT_* variables)."""


@config_group.command(name="show")
@json_option
@click.pass_obj
def show_command(app: App, as_json: bool) -> None:
    """Print each setting with its value and where it came from (default, FILE:LINE, env VAR)."""
    from blut_core.host import KEYS, Config

    config = app.settings.config or Config()
    defaults = {k.name: k.default for k in KEYS}
    resolved = _resolved_defaults(app)
    if as_json:
        echo_json({"files": _files(config), "values": [
            {**v.to_json(), "effective": _plain(v.value) if v.source != "default"
             else resolved.get(v.key)} for v in config.rows()]})
        return
    table([(v.key, _shown(v, resolved.get(v.key) or defaults.get(v.key, "")), v.origin)
           for v in config.rows()], ["KEY", "VALUE", "FROM"])
    for f in _files(config):
        state = "read" if f["read"] else "not present"
        click.echo(f"{f['scope']} file: {f['path']} ({state})")


def _files(config: Config) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if config.user is not None:
        out.append({"scope": "user", "path": str(config.user), "read": config.user in config.files})
    if config.project is not None:
        out.append({"scope": "project", "path": str(config.project),
                    "read": config.project in config.files})
    else:
        out.append({"scope": "project", "path": None, "read": False})
    return out


def _shown(value: ConfigValue, default: str) -> str:
    if value.source == "default":
        return default
    if value.source == "env" or isinstance(value.value, str):
        return str(value.value)
    return json.dumps(_plain(value.value))


def _plain(value: Any) -> Any:
    """A TOML value as JSON can carry it (dates as text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _resolved_defaults(app: App) -> dict[str, str]:
    """What a default comes to on this machine, where that is cheap to say."""
    import contextlib

    from blut_core import BlutError, Broker
    from blut_core.run import usable_cpus

    out = {"home": str(app.settings.home), "jobs": str(usable_cpus())}
    with contextlib.suppress(BlutError):  # a bad BLUT_* broker variable: the default is described
        out["ledger.path"] = str(Broker(app).ledger.path)
    return out
