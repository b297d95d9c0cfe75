"""``blut.toml``: the settings that are otherwise ``BLUT_*`` environment variables, in files.

Two files are read when they exist, and precedence is decided here, in one place (lowest first):

1. defaults (each consumer's own, described in :data:`KEYS`);
2. the user's file: ``blut.toml`` in the user config directory (platformdirs'
   ``user_config_dir``: ``$XDG_CONFIG_HOME/blut/blut.toml``, else ``~/.config/blut/blut.toml``),
   or the file ``BLUT_CONFIG`` names;
3. the project's file: the first ``blut.toml`` in the current directory or one of its
   parents, up to the root of the git repository it is in;
4. ``BLUT_*`` environment variables.

Every key maps to one variable (``[broker] floor`` is ``BLUT_FLOOR``): :meth:`Config.environ`
gives the values the files set as the variables' text, so :class:`~blut_core.host.settings.Settings`,
the broker's config, the ledger, containment and the lineage sinks read one merged mapping.
``[launcher.NAME]`` tables of launchers other than ``local`` are passed through, untyped, for
that launcher (:meth:`Config.launcher_options`). An unknown key or a value of the wrong type is
a one-line :class:`ConfigError` naming the file, the line and the key (exit 2). Relative paths
in a file are relative to the file's directory.

``BLUT_LOG_FORMAT`` and ``BLUT_NO_STALE_CHECK`` are read before any file is, so they stay
variables only.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, NamedTuple

from blut_core.errors import ConfigError
from blut_core.model.sizes import parse_fraction, parse_size

FILENAME = "blut.toml"
#: Names another user-level file instead of the one in the user config directory.
CONFIG_ENV = "BLUT_CONFIG"
_SHOW_HINT = "`blut config show` lists every key, its value and where it comes from"


class Key(NamedTuple):
    """One setting: its dotted name in ``blut.toml``, its variable, its kind and its default.

    The records of this module are NamedTuples, not attrs classes: they are built at every
    start of the CLI, which must not import attrs (see the startup test).
    """

    name: str
    env: str
    kind: str        # path, size, size_or_share, seconds, bool, names, sinks, count, name, ingest
    default: str     # what applies when neither a file nor the environment sets it
    help: str


KEYS: tuple[Key, ...] = (
    Key(name="home", env="BLUT_HOME", kind="path", default="the user data directory",
        help="runs, cache, calibration and the lineage database"),
    Key(name="jobs", env="BLUT_JOBS", kind="count", default="the CPUs blut may use",
        help="stages at once, at most (`run -j` overrides it)"),
    Key(name="strict_plugins", env="BLUT_STRICT_PLUGINS", kind="bool", default="false",
        help="a plugin or cookbook that fails to load is an error"),
    Key(name="disable_plugins", env="BLUT_DISABLE_PLUGINS", kind="names", default="none",
        help="plugin names (as in `blut plugins list`) not to load"),
    Key(name="no_calibration", env="BLUT_NO_CALIBRATION", kind="bool", default="false",
        help="ignore measured peaks and learn nothing (like `run --no-calibration`)"),
    Key(name="ledger.path", env="BLUT_LEDGER", kind="path",
        default="/run/blut/ledger.json, else /tmp/blut-<uid>/ledger.json",
        help="the machine-wide booking ledger"),
    Key(name="lineage.sinks", env="BLUT_LINEAGE_SINKS", kind="sinks", default="duckdb",
        help="lineage sinks runs feed; [] or 'none' turns lineage off"),
    Key(name="lineage.ingest", env="BLUT_LINEAGE_INGEST", kind="ingest", default="deferred",
        help="deferred: a sink that can catch up (duckdb) indexes a run when next read; "
             "at-end: every sink when the run ends"),
    Key(name="containment.backend", env="BLUT_CONTAINMENT", kind="name", default="auto (probed)",
        help="cgroup-v2, cgroup-v1, systemd, rlimit, bare, or auto"),
    Key(name="containment.cgroup_parent", env="BLUT_CGROUP_PARENT", kind="path",
        default="blut's own cgroup", help="the cgroup directory stage cgroups are made under"),
    Key(name="broker.floor", env="BLUT_FLOOR", kind="size_or_share",
        default="max(1 GiB, min(10 % of the box, 2 GiB + 3 %))", help="memory always left free"),
    Key(name="broker.headroom", env="BLUT_HEADROOM", kind="size_or_share",
        default="max(64 MiB, 10 % of the footprint)", help="cap above the footprint"),
    Key(name="broker.escalation_step", env="BLUT_ESCALATION_STEP", kind="size",
        default="max(64 MiB, box / 64)", help="least growth of a cap after an OOM kill"),
    Key(name="broker.default_footprint", env="BLUT_DEFAULT_FOOTPRINT", kind="size", default="1G",
        help="footprint of a stage that declares none"),
    Key(name="broker.admission_timeout", env="BLUT_ADMISSION_TIMEOUT", kind="seconds",
        default="3600", help="seconds a stage may wait for memory others hold"),
    Key(name="launcher.local.forkserver", env="BLUT_FORKSERVER", kind="bool", default="true",
        help="fork Python stages from a pre-imported server"),
    Key(name="launcher.local.reuse_workers", env="BLUT_REUSE_WORKERS", kind="bool", default="true",
        help="reuse a worker that ran a stage cleanly in its own cgroup"),
    Key(name="launcher.local.fork_driver", env="BLUT_FORKSERVER_FORK", kind="bool",
        default="true", help="start the fork server as a fork of the driver, not a new "
                             "interpreter"),
)
BY_NAME = {k.name: k for k in KEYS}
_TRUE = {"1", "true", "yes", "on"}


class ConfigValue(NamedTuple):
    """One setting as it applies: its value and where it came from."""

    key: str
    env: str | None            # the variable it maps to (None: a launcher's passed-through key)
    value: Any                 # as the file (typed) or the variable (text) gives it; None: default
    source: str                # default | file | env
    file: Path | None = None
    line: int | None = None
    text: str | None = None    # the variable's text form of a file's value

    @property
    def origin(self) -> str:
        """``default``, ``FILE:LINE`` or ``env VAR``."""
        if self.source == "file":
            return f"{self.file}:{self.line}" if self.line else str(self.file)
        if self.source == "env":
            return f"env {self.env}"
        return "default"

    def to_json(self) -> dict[str, Any]:
        default = BY_NAME[self.key].default if self.key in BY_NAME else None
        return {"key": self.key, "env": self.env, "value": self.value, "default": default,
                "source": self.source, "file": None if self.file is None else str(self.file),
                "line": self.line, "origin": self.origin}


class Config(NamedTuple):
    """The settings of this process: every key of :data:`KEYS`, and launchers' own tables."""

    files: tuple[Path, ...] = ()              # the files read, lowest precedence first
    values: Mapping[str, ConfigValue] = {}
    launchers: Mapping[str, Mapping[str, ConfigValue]] = {}
    user: Path | None = None                  # where the user's file is looked for
    project: Path | None = None               # the project's file, when one was found

    def environ(self) -> dict[str, str]:
        """The variables the files set (their text), where the environment leaves them unset
        (or blank): laid over the environment, this is the effective environment."""
        return {v.env: v.text for v in self.values.values()
                if v.source == "file" and v.env is not None and v.text is not None}

    def launcher_options(self, name: str) -> dict[str, Any]:
        """The ``[launcher.NAME]`` table of a launcher other than ``local``, as written."""
        return {k: v.value for k, v in self.launchers.get(name, {}).items()}

    def rows(self) -> list[ConfigValue]:
        """Every value, known keys first, then launchers' own keys."""
        return [*self.values.values(), *(v for table in self.launchers.values()
                                         for v in table.values())]


def user_file(environ: Mapping[str, str]) -> Path:
    """The user-level file: ``BLUT_CONFIG``, else ``blut.toml`` in the user config directory.

    On Linux this is platformdirs' rule (``$XDG_CONFIG_HOME``, else ``~/.config``) without
    importing platformdirs on every start; elsewhere platformdirs answers.
    """
    given = environ.get(CONFIG_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    if sys.platform.startswith("linux"):
        xdg = environ.get("XDG_CONFIG_HOME", "").strip()
        base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".config"
        return base.expanduser() / "blut" / FILENAME
    import platformdirs

    return Path(platformdirs.user_config_dir("blut", appauthor=False)) / FILENAME


def project_file(cwd: Path) -> Path | None:
    """The first ``blut.toml`` in ``cwd`` or a parent, up to the root of its git repository."""
    for folder in (cwd, *cwd.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def load(environ: Mapping[str, str], *, cwd: Path | None = None) -> Config:
    """The settings from the files and ``environ`` (see the module docstring for the order)."""
    files: list[Path] = []
    user = user_file(environ)
    if user.is_file():
        files.append(user)
    try:
        here = Path.cwd() if cwd is None else cwd
    except OSError:  # the current directory was removed
        here = None
    project = project_file(here) if here is not None else None
    if project is not None and not (files and project.resolve() == files[0].resolve()):
        files.append(project)
    values = {k.name: ConfigValue(key=k.name, env=k.env, value=None, source="default") for k in KEYS}
    launchers: dict[str, dict[str, ConfigValue]] = {}
    for path in files:
        for value in read_file(path):
            if value.env is None:
                _, name, own = value.key.split(".", 2)
                launchers.setdefault(name, {})[own] = value
            else:
                values[value.key] = value
    for k in KEYS:
        text = environ.get(k.env)
        if text is not None and text.strip():
            values[k.name] = ConfigValue(key=k.name, env=k.env, value=text, source="env")
    return Config(files=tuple(files), values=values, launchers=launchers, user=user,
                  project=project)


def read_file(path: Path) -> list[ConfigValue]:
    """The settings one file sets, checked (a bad file is a one-line ConfigError)."""
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}",
                          hint=f"fix or remove it (or point {CONFIG_ENV} elsewhere)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+)", str(exc))
        where = f"{path}:{found[1]}" if found else str(path)
        raise ConfigError(f"{where}: not valid TOML: {str(exc).split(' (at line')[0]}",
                          hint="see https://toml.io for the syntax; " + _SHOW_HINT) from None
    lines = key_lines(text)
    out: list[ConfigValue] = []
    for dotted, value in _walk(data, ()):
        line = _line_of(lines, dotted)
        key = BY_NAME.get(dotted)
        if key is not None:
            typed, env_text = _check(key, value, path, line)
            out.append(ConfigValue(key=dotted, env=key.env, value=typed, source="file",
                                   file=path, line=line, text=env_text))
        elif _passed_through(dotted):
            out.append(ConfigValue(key=dotted, env=None, value=value, source="file",
                                   file=path, line=line))
        else:
            raise ConfigError(f"{path}:{line}: unknown key {dotted!r}", hint=_unknown_hint(dotted))
    return out


def _walk(data: Mapping[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every setting in ``data``: tables are opened down to the values."""
    for name, value in data.items():
        dotted = ".".join((*prefix, name))
        if dotted in BY_NAME or not isinstance(value, dict):
            yield dotted, value
        elif prefix == ("launcher",) and name != "local":  # another launcher's table, as written
            yield from ((f"{dotted}.{k}", v) for k, v in value.items())
        else:  # a known table, or an unknown one whose keys are reported by their full names
            yield from _walk(value, (*prefix, name))


def _passed_through(dotted: str) -> bool:
    parts = dotted.split(".")
    return len(parts) >= 3 and parts[0] == "launcher" and parts[1] != "local"


def _unknown_hint(dotted: str) -> str:
    import difflib

    close = difflib.get_close_matches(dotted, list(BY_NAME), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}? {_SHOW_HINT}"
    return f"known keys: {', '.join(BY_NAME)}, and [launcher.NAME] tables of other launchers"


_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_HEADER = r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$"  # compiled at first use, by re
_ASSIGN = rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*="


def _dotted(text: str) -> str:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+", text)
    return ".".join(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[str, int]:
    """Where each dotted key (and each table) is written: ``{"broker.floor": 4, ...}``."""
    out: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(_HEADER, line)
        if header:
            table = _dotted(header[1])
            out.setdefault(table, number)
            continue
        assign = re.match(_ASSIGN, line)
        if assign:
            key = _dotted(assign[1])
            out.setdefault(f"{table}.{key}" if table else key, number)
    return out


def _line_of(lines: Mapping[str, int], dotted: str) -> int:
    """The line of ``dotted``, else of the nearest table around it (inline tables), else 1."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        found = lines.get(".".join(parts[:n]))
        if found is not None:
            return found
    return 1


def _check(key: Key, value: Any, path: Path, line: int) -> tuple[Any, str]:
    """``value`` checked against ``key``'s kind: (the typed value, the variable's text)."""
    try:
        return _CHECKS[key.kind](value, f"{path}:{line}: {key.name}", path)
    except ConfigError as exc:
        if exc.hint is None:
            exc.hint = _SHOW_HINT
        raise


def _wrong(where: str, expected: str, value: Any) -> ConfigError:
    shown = repr(value)
    if len(shown) > 40:
        shown = f"a {type(value).__name__}"
    return ConfigError(f"{where}: expected {expected}, got {shown}", hint=_SHOW_HINT)


def _path(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if not isinstance(value, str) or not value.strip():
        raise _wrong(where, "a path (a string)", value)
    given = Path(value.strip()).expanduser()
    resolved = given if given.is_absolute() else path.parent / given
    return str(resolved), str(resolved)


def _size(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _wrong(where, "a size such as '2G' or a number of bytes", value)
    parse_size(value, what=where)
    return value, str(value)


def _size_or_share(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if isinstance(value, str) and value.strip().endswith("%"):
        parse_fraction(value, what=where)
        return value, value.strip()
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _wrong(where, "a size such as '2G' or a share such as '5%'", value)
    return _size(value, where, path)


def _seconds(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise _wrong(where, "seconds (a number ≥ 0)", value)
    return value, repr(value)


def _bool(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if not isinstance(value, bool):
        raise _wrong(where, "true or false", value)
    return value, "1" if value else "0"


def _names(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if isinstance(value, str):
        value = [n.strip() for n in value.split(",") if n.strip()]
    if not isinstance(value, list) or not all(isinstance(n, str) and n.strip() for n in value):
        raise _wrong(where, "a list of names such as [\"a\", \"b\"]", value)
    return value, ",".join(value)


def _sinks(value: Any, where: str, path: Path) -> tuple[Any, str]:
    names, text = _names(value, where, path)
    return names, text or "none"  # an empty list turns lineage off, as "none" does


def _ingest(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if value not in ("deferred", "at-end"):
        raise _wrong(where, "'deferred' or 'at-end'", value)
    return value, value


def _count(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _wrong(where, "a whole number ≥ 1", value)
    return value, str(value)


def _name(value: Any, where: str, path: Path) -> tuple[Any, str]:
    if not isinstance(value, str) or not value.strip():
        raise _wrong(where, "a name (a string)", value)
    return value.strip(), value.strip()


_CHECKS: dict[str, Callable[[Any, str, Path], tuple[Any, str]]] = {
    "path": _path, "size": _size, "size_or_share": _size_or_share, "seconds": _seconds,
    "bool": _bool, "names": _names, "sinks": _sinks, "count": _count, "name": _name,
    "ingest": _ingest,
}


def truthy(text: str | None) -> bool:
    """A variable's text read as a switch (``1``, ``true``, ``yes``, ``on``)."""
    return (text or "").strip().lower() in _TRUE


def parse_jobs(text: str | None, *, origin: str) -> int | None:
    """``BLUT_JOBS``'s text as a count (``None``: unset), or a one-line ConfigError."""
    if text is None or not text.strip():
        return None
    try:
        jobs = int(text.strip())
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"{origin}: jobs must be a whole number ≥ 1, got {text!r}",
                          hint="unset it to use the CPUs blut may use")
    return jobs


def export(config: Config, environ: MutableMapping[str, str]) -> dict[str, str]:
    """Put the files' values in ``environ`` (the process environment) where it leaves them
    unset; returns what was set.

    Plugins and stage processes that read ``BLUT_*`` variables themselves then see the
    values the files give, with the same precedence.
    """
    done = {}
    for name, text in config.environ().items():
        if not environ.get(name, "").strip():
            environ[name] = text
            done[name] = text
    return done
