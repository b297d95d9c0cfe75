"""Schedules: what one is, where its definition lives, and what every backend shares.

A schedule's definition (recipe, params, calendar, backend, environment) is a JSON file,
``$BLUT_HOME/schedules/NAME.json``. What a backend installs (a crontab line, two systemd
units) carries nothing but the schedule's *name*, the ``blut`` executable and a few
environment variables, and runs ``blut schedule fire NAME``, which reads the rest from the
definition. So params never reach a shell or a unit file: whatever they hold (quotes,
``$(...)``, newlines) arrives in the recipe as it was given. Names and calendars are checked
against a strict alphabet before anything is written, and what does go into a crontab or a
unit is quoted for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from blut_core import ConfigError

NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # compiled at first use, by re
NAME_HINT = "a schedule name is 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
#: Words every backend understands, whatever its own calendar syntax.
KEYWORDS = ("minutely", "hourly", "daily", "weekly", "monthly", "yearly")
#: Environment a firing needs from the installing shell (besides every ``BLUT_*``).
CARRIED = ("PATH", "PYTHONPATH")


def check_name(name: str) -> str:
    if not re.match(NAME, name):
        raise ConfigError(f"schedule name {name!r} is not allowed", hint=NAME_HINT)
    return name


def default_name(recipe: str) -> str:
    """``quickstart:wordcount`` -> ``quickstart-wordcount``."""
    return recipe.replace(":", "-").replace("_", "-").lower()[:64]


class Entry(NamedTuple):
    """What a backend installs for one schedule: fire ``argv`` with ``env`` on ``calendar``.

    NamedTuples, not attrs classes, here: the backends' modules load at every start of blut.
    """

    name: str
    recipe: str
    calendar: str                 # as the backend writes it (already checked)
    argv: tuple[str, ...]         # blut schedule fire NAME
    env: Mapping[str, str]
    log: Path                     # where a firing's output goes


class Installed(NamedTuple):
    """Something a backend finds installed for a schedule name."""

    name: str
    backend: str
    calendar: str
    where: str                    # the crontab, or the unit files
    home: str | None = None       # BLUT_HOME it fires in


class Backend(ABC):
    """A schedule backend. ``install`` and ``remove`` change only what is ours, and leave
    everything as it was when they fail."""

    name: str = ""

    @abstractmethod
    def unusable_reason(self) -> str | None:
        """``None`` when this backend can install schedules here; else one line saying why."""

    @abstractmethod
    def calendar(self, expr: str) -> str:
        """``expr`` as this backend writes it; a one-line ConfigError when it is not valid."""

    @abstractmethod
    def install(self, entry: Entry, *, replace: bool = False) -> list[str]:
        """Install (or, with ``replace``, re-install) ``entry``; return what was written."""

    @abstractmethod
    def remove(self, name: str) -> list[str]:
        """Remove schedule ``name`` (only what is ours); return what was removed."""

    @abstractmethod
    def installed(self) -> dict[str, Installed]:
        """Every blut schedule this backend has installed, by name."""


def no_control_characters(value: str, what: str, hint: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{what} {value!r} contains a newline or another control character",
                          hint=hint)
    return value


def blut_executable() -> list[str]:
    """How to start this blut again: the console script beside this interpreter, else the
    one on PATH, else ``python -m blut_core``."""
    beside = Path(sys.executable).with_name("blut")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("blut")
    return [found] if found else [sys.executable, "-m", "blut_core"]


def carried_environment(home: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a firing gets: ``BLUT_HOME`` (absolute), the other ``BLUT_*``
    variables, ``PATH`` and ``PYTHONPATH`` as the installing shell has them."""
    env = {k: v for k, v in environ.items() if k.startswith("BLUT_") and v}
    env.update({k: environ[k] for k in CARRIED if environ.get(k)})
    env["BLUT_HOME"] = str(home.resolve())
    for key, value in env.items():
        no_control_characters(value, f"environment variable {key}",
                              "unset it, or set it without newlines, before installing a schedule")
    return dict(sorted(env.items()))


class Store:
    """The definitions, locks, logs and firing history under ``$BLUT_HOME/schedules``."""

    def __init__(self, home: Path) -> None:
        self.root = home / "schedules"

    def path(self, name: str, suffix: str = ".json") -> Path:
        return self.root / f"{name}{suffix}"

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"schedule {name}: {self.path(name)} cannot be read ({exc})",
                              hint=f"remove it with `blut schedule remove {name}`") from None
        return data if isinstance(data, dict) else None

    def names(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.root.glob("*.json") if re.match(NAME, p.stem))
        except OSError:
            return []

    def save(self, definition: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(str(definition["name"]))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(definition, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, target)

    def delete(self, name: str) -> None:
        for suffix in (".json", ".lock"):
            self.path(name, suffix).unlink(missing_ok=True)

    def record(self, name: str, event: str, **fields: Any) -> None:
        """Append one event to the schedule's history (``NAME.history.jsonl``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields}, default=str)
        with self.path(name, ".history.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def history(self, name: str) -> list[dict[str, Any]]:
        try:
            text = self.path(name, ".history.jsonl").read_text(encoding="utf-8")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out


def last(history: Sequence[Mapping[str, Any]], *events: str) -> Mapping[str, Any] | None:
    return next((h for h in reversed(history) if h.get("event") in events), None)
