"""The Ray launcher's settings: which cluster, which namespace, how tasks run, each field checked.

A bad value raises :class:`SettingsError` with one line that names the field, when the
settings are made (``RaySettings(...)``, or :meth:`RaySettings.from_mapping` for a config
file's table). :meth:`RaySettings.init_kwargs` is what goes to ``ray.init``.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Mapping
from typing import Any

import attrs

_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])\Z")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
_FIELDS = ("address", "namespace", "runtime_env", "log_to_driver", "poll_interval")


class SettingsError(ValueError):
    """One setting is wrong. ``field`` names it; the message is one line."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"ray.{field}: {problem}")


def check_address(address: str) -> None:
    """Raise ``ValueError`` unless ``address`` is ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if address in ("auto", "local"):
        return
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be auto, local, HOST:PORT or ray://HOST:PORT (got {address!r})")


def head_endpoint(address: str | None) -> tuple[str, int] | None:
    """The ``(host, port)`` a ``HOST:PORT`` or ``ray://HOST:PORT`` address names (``None``
    for ``auto``, ``local``, nothing, or an address :func:`check_address` refuses)."""
    if address is None:
        return None
    try:
        check_address(address)
    except ValueError:
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return (host.strip("[]"), int(port)) if sep and address not in ("auto", "local") else None


def _check_address(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise SettingsError(attribute.name, f"must be a string, not {type(value).__name__}")
    try:
        check_address(value)
    except ValueError as exc:
        raise SettingsError(attribute.name, str(exc)) from None


def _check_namespace(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _NAMESPACE.match(value):
        raise SettingsError(attribute.name, f"must be 1-64 letters, digits and _.- (got {value!r})")


def _check_runtime_env(_: object, attribute: attrs.Attribute[Mapping[str, Any]],
                       value: Mapping[str, Any]) -> None:
    field = attribute.name
    for key in value:
        if not isinstance(key, str):
            raise SettingsError(field, f"keys must be strings, not {type(key).__name__} ({key!r})")
    env_vars = value.get("env_vars", {})
    if not isinstance(env_vars, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise SettingsError(field, "env_vars must map strings to strings")
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SettingsError(field, f"must be plain data (JSON): {exc}") from None


def _check_bool(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise SettingsError(attribute.name, f"must be true or false, not {value!r}")


def _check_poll(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(attribute.name, f"must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or not 0.01 <= value <= 3600:
        raise SettingsError(attribute.name, f"must be from 0.01 to 3600 seconds (got {value!r})")


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingsError("runtime_env", f"must be a table, not {type(value).__name__}")
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class RaySettings:
    """How the Ray launcher connects and runs tasks.

    ``address``: the cluster (``HOST:PORT`` of its GCS, ``ray://HOST:PORT`` for Ray Client,
    ``auto``), ``None`` for Ray's own choice (``RAY_ADDRESS``, else a new local instance).
    ``namespace``: Ray's namespace for the run's named objects. ``runtime_env``: Ray's
    runtime environment for every task (``env_vars``, ``working_dir``...), plain data.
    ``log_to_driver``: whether tasks' output is copied to the driver's terminal (blut keeps
    stage logs in the run directory either way). ``poll_interval``: the longest wait for a
    finished task before the launcher looks again.
    """

    address: str | None = attrs.field(default=None, validator=_check_address)
    namespace: str | None = attrs.field(default=None, validator=_check_namespace)
    runtime_env: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen,
                                                 validator=_check_runtime_env)
    log_to_driver: bool = attrs.field(default=False, validator=_check_bool)
    poll_interval: float = attrs.field(default=0.5, validator=_check_poll)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RaySettings:
        """Settings from a config table (e.g. TOML ``[launcher.ray]``); unknown keys are errors."""
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise SettingsError(unknown[0], f"unknown setting (known: {', '.join(_FIELDS)})")
        return cls(**data)

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ray.init`` (only those set)."""
        kwargs: dict[str, Any] = {"log_to_driver": self.log_to_driver}
        if self.address is not None:
            kwargs["address"] = self.address
        if self.namespace is not None:
            kwargs["namespace"] = self.namespace
        if self.runtime_env:
            kwargs["runtime_env"] = json.loads(json.dumps(dict(self.runtime_env)))
        return kwargs
