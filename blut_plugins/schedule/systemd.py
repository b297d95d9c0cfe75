"""Schedules as systemd timers: the ``systemd`` backend (entry point ``schedule-systemd``).

Two units per schedule, ``blut-schedule-NAME.service`` (``Type=oneshot``, ``ExecStart=blut
schedule fire NAME``) and ``blut-schedule-NAME.timer`` (``OnCalendar=``, ``Persistent=true``),
in ``/etc/systemd/system`` for root and ``~/.config/systemd/user`` otherwise; then
``systemctl daemon-reload`` and ``systemctl enable --now`` the timer. Each unit's first line
is the marker ``# blut-schedule:NAME``: a unit file without it is not ours and is never
overwritten or removed. When ``systemctl`` fails the unit files are put back as they were.
Calendars are checked with ``systemd-analyze calendar`` where it is installed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from blut_core import ConfigError, hookimpl
from blut_plugins.schedule.model import KEYWORDS, Backend, Entry, Installed, no_control_characters

if TYPE_CHECKING:
    from blut_core import SchedulerSpec

PREFIX = "blut-schedule-"
#: regexes are compiled at first use (by re), not by every start that registers this backend
CALENDAR = r"^[0-9A-Za-z*:/,.~ +_-]{1,200}$"
HINT = ("a systemd calendar such as daily, hourly, 'Mon..Fri 02:00', '*-*-* 03:30:00' or "
        "'*:0/15' (see `man systemd.time`)")
PLAIN = r"^[A-Za-z0-9_./:@+=,-]+$"


def quote(arg: str) -> str:
    """One word of a unit file's ``ExecStart=``/``Environment=``, specifiers escaped."""
    text = arg.replace("%", "%%")
    if re.match(PLAIN, arg):
        return text
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{text}"'


def marker(name: str) -> str:
    return f"# blut-schedule:{name}"


def render(entry: Entry) -> dict[str, str]:
    """The two unit files of ``entry``: file name -> text."""
    service, timer = f"{PREFIX}{entry.name}.service", f"{PREFIX}{entry.name}.timer"
    head = f"{marker(entry.name)} (written by blut; `blut schedule remove {entry.name}` removes it)\n"
    env = "".join(f"Environment={quote(f'{k}={v}')}\n" for k, v in sorted(entry.env.items()))
    command = " ".join(quote(a) for a in entry.argv)
    log = str(entry.log).replace("%", "%%")
    return {
        service: (f"{head}[Unit]\nDescription=blut schedule {entry.name} ({entry.recipe})\n\n"
                  f"[Service]\nType=oneshot\n{env}ExecStart={command}\n"
                  f"StandardOutput=append:{log}\nStandardError=append:{log}\n"),
        timer: (f"{head}[Unit]\nDescription=blut schedule {entry.name} ({entry.recipe})\n\n"
                f"[Timer]\nOnCalendar={entry.calendar}\nPersistent=true\nUnit={service}\n\n"
                f"[Install]\nWantedBy=timers.target\n"),
    }


def default_unit_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/etc/systemd/system")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


class SystemdTimers(Backend):
    """systemd timer units: system units for root, user units otherwise."""

    name = "systemd"

    def __init__(self, unit_dir: Path | None = None, *, user: bool | None = None) -> None:
        self.unit_dir = unit_dir or default_unit_dir()
        self.user = (os.geteuid() != 0) if user is None else user

    def unusable_reason(self) -> str | None:
        if shutil.which("systemctl") is None:
            return "systemctl is not installed"
        if not os.path.isdir("/run/systemd/system"):
            return "systemd is not running here (PID 1 is not systemd: /run/systemd/system is missing)"
        return None

    def calendar(self, expr: str) -> str:
        no_control_characters(expr, "calendar", HINT)
        text = " ".join(expr.split())
        if text.lower() in KEYWORDS:
            return text.lower()
        if not re.match(CALENDAR, text):
            raise ConfigError(f"calendar {expr!r} has characters a systemd calendar never has",
                              hint=HINT)
        analyze = shutil.which("systemd-analyze")
        if analyze is not None:
            done = subprocess.run([analyze, "calendar", text], capture_output=True, text=True,
                                  timeout=30)
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or ["invalid"])[-1]
                raise ConfigError(f"calendar {expr!r} is not a systemd calendar: {why}", hint=HINT)
        return text

    def _systemctl(self, *args: str) -> None:
        argv = ["systemctl", *(["--user"] if self.user else []), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise ConfigError(f"cannot run {' '.join(argv)}: {exc.strerror or exc}",
                              hint="install systemd, or use --backend cron") from None
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise ConfigError(f"{' '.join(argv)} failed: {why}",
                              hint="nothing was changed; or use --backend cron")

    def _ours(self, path: Path, name: str) -> bool | None:
        """``None``: no such file; else whether it carries our marker."""
        try:
            first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        except FileNotFoundError:
            return None
        except OSError:
            return False
        return first.startswith(marker(name) + " ") or first == marker(name)

    def install(self, entry: Entry, *, replace: bool = False) -> list[str]:
        units = render(entry)
        before: dict[Path, str | None] = {}
        for file_name in units:
            path = self.unit_dir / file_name
            ours = self._ours(path, entry.name)
            if ours is False:
                raise ConfigError(f"{path} exists and was not written by blut; not touching it",
                                  hint="choose another schedule name with --name")
            if ours and not replace:
                raise ConfigError(f"schedule {entry.name} is already installed ({path})",
                                  hint=f"pass --replace, or `blut schedule remove {entry.name}`")
            before[path] = path.read_text(encoding="utf-8") if ours else None
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        try:
            for file_name, text in units.items():
                _write_atomic(self.unit_dir / file_name, text)
            self._systemctl("daemon-reload")
            self._systemctl("enable", "--now", f"{PREFIX}{entry.name}.timer")
        except BaseException:
            self._restore(before)
            raise
        return [str(self.unit_dir / f) for f in units]

    def _restore(self, before: dict[Path, str | None]) -> None:
        for path, text in before.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomic(path, text)
        with contextlib.suppress(ConfigError):  # systemd is what failed: the files are back
            self._systemctl("daemon-reload")

    def remove(self, name: str) -> list[str]:
        paths = [self.unit_dir / f"{PREFIX}{name}.{kind}" for kind in ("timer", "service")]
        found = {p: self._ours(p, name) for p in paths}
        foreign = [p for p, ours in found.items() if ours is False]
        if foreign:
            raise ConfigError(f"{foreign[0]} was not written by blut; not removing it",
                              hint="remove it by hand if it is yours")
        present = [p for p, ours in found.items() if ours]
        if not present:
            return []
        self._systemctl("disable", "--now", f"{PREFIX}{name}.timer")
        for p in present:
            p.unlink(missing_ok=True)
        self._systemctl("daemon-reload")
        return [str(p) for p in present]

    def installed(self) -> dict[str, Installed]:
        out = {}
        try:
            timers = sorted(self.unit_dir.glob(f"{PREFIX}*.timer"))
        except OSError:
            return {}
        for path in timers:
            name = path.name[len(PREFIX):-len(".timer")]
            if not self._ours(path, name):
                continue
            text = path.read_text(encoding="utf-8")
            calendar = next((ln.split("=", 1)[1] for ln in text.splitlines()
                             if ln.startswith("OnCalendar=")), "?")
            service = path.with_suffix(".service")
            home = None
            if service.exists():
                home = _env_value(service.read_text(encoding="utf-8").splitlines(), "BLUT_HOME")
            out[name] = Installed(name=name, backend="systemd", calendar=calendar,
                                  where=str(path), home=home)
        return out


def _env_value(lines: Sequence[str], key: str) -> str | None:
    for ln in lines:
        if ln.startswith("Environment="):
            value = ln.split("=", 1)[1]
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\").replace("$$", "$")
            value = value.replace("%%", "%")
            if value.startswith(key + "="):
                return value.split("=", 1)[1]
    return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@hookimpl
def blut_schedulers() -> Iterator[SchedulerSpec]:
    """Registration: the ``systemd`` schedule backend (timer units)."""
    from blut_core import SchedulerSpec

    yield SchedulerSpec(name="systemd", summary="a systemd timer and service unit",
                        factory=SystemdTimers, priority=10)
