"""The Slurm launcher's settings: where jobs go, how they are followed, each field checked.

A bad value raises :class:`SettingsError` with one line that names the field, when the
settings are made (``SlurmSettings(...)``, or :meth:`SlurmSettings.from_mapping` for a
config file's table). Options that blut decides itself for every job (its name, ``--mem``,
``--time``, logs, working directory, environment...) cannot be smuggled in through
``extra_sbatch_args``: a job must mean the same whatever the settings say.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

#: sbatch options blut sets for every job; ``extra_sbatch_args`` may not set them.
RESERVED_LONG = frozenset({
    "--job-name", "--mem", "--mem-per-cpu", "--mem-per-gpu", "--cpus-per-task", "--time",
    "--output", "--error", "--input", "--chdir", "--export", "--export-file", "--parsable",
    "--wrap", "--requeue", "--no-requeue", "--array", "--wait", "--ntasks", "--nodes",
    "--partition", "--account", "--qos",
})
#: their one-letter forms (``-J name``, ``-c 2``...)
RESERVED_SHORT = frozenset("JctoeiDnNpAqaW")
#: sbatch's one-letter flags that take no value, so that a bundle like ``-vJ`` is read on
_SHORT_FLAGS = frozenset("hHIkOQsvV")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")
_FIELDS = ("partition", "account", "qos", "extra_sbatch_args", "poll_interval", "lost_job_grace")


class SettingsError(ValueError):
    """One setting is wrong. ``field`` names it; the message is one line."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"slurm.{field}: {problem}")


def _name(field: str, value: str | None, *, many: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise SettingsError(field, f"must be a string, not {type(value).__name__}")
    parts = value.split(",") if many else [value]
    for part in parts:
        if not _NAME.match(part):
            what = "comma-separated names" if many else "a name"
            raise SettingsError(field, f"must be {what} of letters, digits and _.+- (got {value!r})")


def _check_partition(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    _name(attribute.name, value, many=True)


def _check_name(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    _name(attribute.name, value)


def reserved_option(arg: str) -> str | None:
    """The blut-owned sbatch option that ``arg`` would set, or ``None``.

    Long options count in full or abbreviated (sbatch, like getopt, accepts any unambiguous
    prefix: ``--mem-per`` is ``--mem-per-cpu``); short options alone or in a bundle of flags.
    """
    if arg.startswith("--"):
        name = arg.split("=", 1)[0]
        if len(name) <= 2:
            return None
        for reserved in sorted(RESERVED_LONG):
            if reserved == name or reserved.startswith(name):
                return reserved
        return None
    if arg.startswith("-") and len(arg) > 1:
        for letter in arg[1:]:
            if letter in RESERVED_SHORT:
                return f"-{letter}"
            if letter not in _SHORT_FLAGS:
                return None
    return None


def _check_extra(_: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
    for arg in value:
        if not isinstance(arg, str):
            raise SettingsError(attribute.name, f"must hold strings, not {type(arg).__name__} ({arg!r})")
        if "\0" in arg:
            raise SettingsError(attribute.name, f"{arg!r} contains a NUL byte")
        reserved = reserved_option(arg)
        if reserved is not None:
            raise SettingsError(attribute.name, f"{arg!r} sets {reserved}, which blut decides for every job")


Check = Callable[[object, "attrs.Attribute[float]", float], None]


def _seconds(low: float, high: float) -> Check:
    def check(_: object, attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(attribute.name, f"must be a number of seconds, not {type(value).__name__}")
        if not math.isfinite(value) or value < low or value > high:
            raise SettingsError(attribute.name, f"must be from {low:g} to {high:g} seconds (got {value!r})")

    return check


def _tuple(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen(kw_only=True)
class SlurmSettings:
    """How the Slurm launcher submits and follows jobs.

    ``partition`` (one or a comma-separated list), ``account`` and ``qos`` go to sbatch
    when set; ``extra_sbatch_args`` are more sbatch options, in order (e.g.
    ``("--constraint=fast",)``). ``poll_interval`` is the pause between two status queries
    of a run's jobs; ``lost_job_grace`` how long a job may be missing from every report
    (squeue, sacct, or an unreachable controller) before it counts as lost.
    """

    partition: str | None = attrs.field(default=None, validator=_check_partition)
    account: str | None = attrs.field(default=None, validator=_check_name)
    qos: str | None = attrs.field(default=None, validator=_check_name)
    extra_sbatch_args: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_check_extra)
    poll_interval: float = attrs.field(default=2.0, validator=_seconds(0.1, 3600))
    lost_job_grace: float = attrs.field(default=60.0, validator=_seconds(0, 86400))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SlurmSettings:
        """Settings from a config table (e.g. TOML ``[launcher.slurm]``); unknown keys are errors."""
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise SettingsError(unknown[0], f"unknown setting (known: {', '.join(_FIELDS)})")
        extra = data.get("extra_sbatch_args", ())
        if not isinstance(extra, list | tuple | str):
            raise SettingsError("extra_sbatch_args", f"must be a list of strings, not {type(extra).__name__}")
        return cls(
            partition=data.get("partition"),
            account=data.get("account"),
            qos=data.get("qos"),
            extra_sbatch_args=extra,
            poll_interval=data.get("poll_interval", 2.0),
            lost_job_grace=data.get("lost_job_grace", 60.0),
        )
