"""Errors a user is expected to read: one line, a hint, an exit code, no traceback.

Exit codes (the contract of the ``blut`` command): 0 success, 1 run failed, 2 usage or
configuration error, 3 admission refused, 130 interrupted. Anything that is not a
:class:`BlutError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class BlutError(Exception):
    """An error a user is expected to read. Shown as one line without a traceback."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = tuple(details)

    def render(self) -> str:
        """The text shown on stderr: the message, detail lines, then the hint."""
        lines = [f"Error: {self.message}"]
        lines += [f"  - {d}" for d in self.details]
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(BlutError):
    """Bad input: params, a params file, a plan, an environment variable, a path."""

    exit_code = 2


class PluginError(BlutError):
    """A plugin is missing, broken or misbehaving. Messages name plugin and distribution."""

    exit_code = 2


class PluginConflictError(PluginError):
    """Two plugins provide the same name through one registration hook."""

    def __init__(self, hook: str, name: str, first: str, second: str) -> None:
        super().__init__(
            f"{name!r} is provided twice through {hook}: by {first} and by {second}",
            hint="uninstall one of them, or disable one by plugin name with BLUT_DISABLE_PLUGINS",
        )


class PlanError(ConfigError):
    """A plan is not a valid DAG (cycle, dangling input, duplicate name)."""


class LauncherError(BlutError):
    """A launcher cannot do what was asked, for a reason the user can fix."""


class AdmissionRefused(BlutError):
    """A stage can never fit this machine's memory."""

    exit_code = 3


class RunFailed(BlutError):
    """A run finished with failed stages (the summary has been printed already)."""

    exit_code = 1


class Interrupted(BlutError):
    """The run was cancelled by the user (Ctrl-C, SIGTERM, ``blut cancel``)."""

    exit_code = 130
