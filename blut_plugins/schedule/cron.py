"""Schedules as crontab lines: the ``cron`` backend (entry point ``schedule-cron``).

One line per schedule in the user's crontab (``crontab -l``, ``crontab -``), ending with the
marker ``# blut-schedule:NAME``::

    30 2 * * * exec env BLUT_HOME=/srv/blut /usr/bin/blut schedule fire nightly \
        >>/srv/blut/schedules/nightly.log 2>&1 # blut-schedule:nightly

(one line in the crontab; cut here to fit the page).

Install, list and remove read and write only lines with that marker and keep every other
line as it was; a command that fails writes nothing. Calendars are five cron fields
(``*/15 * * * *``), an ``@hourly``-style nickname, or one of ``minutely``, ``hourly``,
``daily``, ``weekly``, ``monthly``, ``yearly``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core import ConfigError, hookimpl
from blut_plugins.schedule.model import Backend, Entry, Installed, no_control_characters

if TYPE_CHECKING:
    from blut_core import SchedulerSpec

#: regexes are compiled at first use (by re), not by every start that registers this backend
MARKER = r"\s# blut-schedule:([a-z0-9][a-z0-9_-]*)$"
NICKNAMES = {"minutely": "* * * * *", "hourly": "@hourly", "daily": "@daily", "weekly": "@weekly",
             "monthly": "@monthly", "yearly": "@yearly"}
SPECIAL = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
          ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                            "nov", "dec")),
          ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
ITEM = r"^(\*|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?$"
HINT = ("five cron fields (minute hour day month weekday), e.g. '*/15 * * * *' or '30 2 * * *', "
        "or one of minutely, hourly, daily, weekly, monthly, yearly")
#: cron reads at most this many characters of a line's command
MAX_LINE = 990


def _value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        value = int(text)
    elif text in names:
        value = names.index(text) + (1 if low == 1 else 0)
    else:
        return None
    return value if low <= value <= high else None


def cron_calendar(expr: str) -> str:
    """``expr`` as a crontab time spec, or a one-line ConfigError saying what is wrong."""
    no_control_characters(expr, "calendar", HINT)
    text = expr.strip().lower()
    if text in NICKNAMES:
        return NICKNAMES[text]
    if text.startswith("@"):
        if text in SPECIAL:
            return text
        raise ConfigError(f"calendar {expr!r} is not a cron nickname", hint=HINT)
    fields = text.split()
    if len(fields) != 5:
        raise ConfigError(f"calendar {expr!r} is not a cron expression (it has {len(fields)} "
                          "fields, not 5)", hint=HINT)
    for field, (what, low, high, names) in zip(fields, FIELDS, strict=True):
        for item in field.split(","):
            match = re.match(ITEM, item)
            ok = match is not None
            if match is not None and match[1] != "*":
                bounds = match[1].split("-")
                ok = all(_value(b, low, high, names) is not None for b in bounds)
            if match is not None and match[3]:
                ok = ok and int(match[3][1:]) > 0
            if not ok:
                raise ConfigError(f"calendar {expr!r}: {item!r} is not a valid {what} "
                                  f"({low}-{high})", hint=HINT)
    return " ".join(fields)


def _quote(arg: str) -> str:
    """One shell word; ``%`` escaped, as cron turns a bare ``%`` into a newline."""
    import shlex  # a plugin module every start imports: shlex only when a line is written

    return shlex.quote(arg).replace("%", "\\%")


def render_line(entry: Entry) -> str:
    """The crontab line of ``entry`` (one line, marker at the end)."""
    env = " ".join(_quote(f"{k}={v}") for k, v in sorted(entry.env.items()))
    command = " ".join(_quote(a) for a in entry.argv)
    line = (f"{entry.calendar} exec env {env} {command} >>{_quote(str(entry.log))} 2>&1 "
            f"# blut-schedule:{entry.name}")
    if "\n" in line or "\r" in line:  # pragma: no cover - every part was checked
        raise ConfigError(f"schedule {entry.name}: the crontab line would span lines")
    if len(line) > MAX_LINE:
        raise ConfigError(f"schedule {entry.name}: its crontab line would be {len(line)} "
                          f"characters, more than cron reads ({MAX_LINE})",
                          hint="use a shorter BLUT_HOME or install path")
    return line


def _parse(line: str) -> Installed | None:
    match = re.search(MARKER, line)
    if match is None:
        return None
    body = line[:match.start()]
    special = body.startswith("@")
    parts = body.split(None, 1 if special else 5)
    calendar = " ".join(parts[:1 if special else 5])
    home = None
    import shlex

    with contextlib.suppress(ValueError):
        words = shlex.split(parts[-1].replace("\\%", "%"))
        home = next((w.split("=", 1)[1] for w in words if w.startswith("BLUT_HOME=")), None)
    return Installed(name=match[1], backend="cron", calendar=calendar, where="crontab", home=home)


class Cron(Backend):
    """The invoking user's crontab."""

    name = "cron"

    def __init__(self, crontab: str = "crontab") -> None:
        self.crontab = crontab

    def unusable_reason(self) -> str | None:
        if shutil.which(self.crontab) is None:
            return "the crontab command is not installed (Debian: apt-get install cron)"
        return None

    def calendar(self, expr: str) -> str:
        return cron_calendar(expr)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One blut at a time edits this user's crontab (read, change, write back)."""
        where = Path(tempfile.gettempdir()) / f"blut-{os.getuid()}"
        where.mkdir(parents=True, exist_ok=True)
        fd = os.open(where / "crontab.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> str:
        try:
            done = subprocess.run([self.crontab, "-l"], capture_output=True, text=True, timeout=30)
        except OSError as exc:
            raise ConfigError(f"cannot run {self.crontab} -l: {exc.strerror or exc}",
                              hint="install cron (Debian: apt-get install cron)") from None
        if done.returncode == 0:
            return done.stdout
        if "no crontab" in done.stderr.lower():
            return ""
        raise ConfigError(f"{self.crontab} -l failed: {_last(done.stderr)}",
                          hint="check that this user may use cron (/etc/cron.allow, cron.deny)")

    def _write(self, text: str) -> None:
        self._run("-", text)

    def _run(self, arg: str, text: str | None = None) -> None:
        done = subprocess.run([self.crontab, arg], input=text, capture_output=True, text=True,
                              timeout=30)
        if done.returncode != 0:
            raise ConfigError(f"{self.crontab} {arg} failed: {_last(done.stderr)}",
                              hint="nothing was changed; see `crontab -l`")

    def install(self, entry: Entry, *, replace: bool = False) -> list[str]:
        line = render_line(entry)
        with self._locked():
            current = self.read()
            lines = current.splitlines()
            ours = [i for i, ln in enumerate(lines) if (p := _parse(ln)) and p.name == entry.name]
            if ours and not replace:
                raise ConfigError(f"schedule {entry.name} is already in the crontab",
                                  hint=f"pass --replace, or `blut schedule remove {entry.name}`")
            if ours:
                lines[ours[0]] = line
                lines = [ln for i, ln in enumerate(lines) if i not in ours[1:]]
            else:
                lines.append(line)
            self._write("\n".join(lines) + "\n")
        return [f"crontab line: {line}"]

    def remove(self, name: str) -> list[str]:
        with self._locked():
            lines = self.read().splitlines()
            keep = [ln for ln in lines if not ((p := _parse(ln)) and p.name == name)]
            if len(keep) == len(lines):
                return []
            if keep:
                self._write("\n".join(keep) + "\n")
            else:  # ours were the only lines: leave no crontab, as before the first install
                self._run("-r")
        return [f"crontab line of {name}"]

    def installed(self) -> dict[str, Installed]:
        if self.unusable_reason() is not None:
            return {}
        found = (_parse(ln) for ln in self.read().splitlines())
        return {i.name: i for i in found if i is not None}


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


@hookimpl
def blut_schedulers() -> Iterator[SchedulerSpec]:
    """Registration: the ``cron`` schedule backend."""
    from blut_core import SchedulerSpec

    yield SchedulerSpec(name="cron", summary="a line in the user's crontab", factory=Cron,
                        priority=20)
