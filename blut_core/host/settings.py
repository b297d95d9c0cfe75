"""Process settings, read once: ``BLUT_*`` variables over ``blut.toml`` files, never scattered.

:mod:`blut_core.host.config` reads the files and decides precedence; :attr:`Settings.environ`
is the effective environment every consumer reads (the broker's config, the ledger,
containment, lineage sinks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from blut_core.host.config import Config


def default_home() -> Path:
    """The user's data directory (``~/.local/share/blut`` on Linux), when nothing sets a home."""
    import platformdirs

    return Path(platformdirs.user_data_dir("blut", appauthor=False))


class Settings(NamedTuple):
    """What the environment and the config files say. ``home`` holds runs, the cache and the
    lineage DB.

    A NamedTuple (an immutable typed record) rather than an attrs class: it is built at
    every start of the CLI, before any command runs.
    """

    home_override: Path | None = None
    disabled_plugins: tuple[str, ...] = ()
    strict_plugins: bool = False
    environ: Mapping[str, str] = {}
    config: Config | None = None

    def __repr__(self) -> str:
        return (f"Settings(home={self.home_override!r}, disabled_plugins={self.disabled_plugins!r}, "
                f"strict_plugins={self.strict_plugins!r})")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *,
                     cwd: Path | None = None) -> Settings:
        """Settings from ``environ`` (default: this process's) over the config files.

        Files are found from ``cwd`` (default: the current directory). With the process's own
        environment, the files' values are also put in it where it leaves them unset, so
        plugins and stage processes that read ``BLUT_*`` themselves agree.
        """
        from blut_core.host import config as files

        env = dict(os.environ if environ is None else environ)
        cfg = files.load(env, cwd=cwd)
        env.update(cfg.environ())
        if environ is None:
            files.export(cfg, os.environ)
        home_text = env.get("BLUT_HOME", "").strip()
        home = Path(home_text).expanduser() if home_text else None
        disabled = tuple(n.strip() for n in env.get("BLUT_DISABLE_PLUGINS", "").split(",") if n.strip())
        return cls(home_override=home, disabled_plugins=disabled,
                   strict_plugins=files.truthy(env.get("BLUT_STRICT_PLUGINS")), environ=env,
                   config=cfg)

    @property
    def home(self) -> Path:
        """``$BLUT_HOME`` (or ``home`` in a config file), else the user's data directory."""
        return self.home_override if self.home_override is not None else default_home()

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def jobs(self) -> int | None:
        """Stages at once by default (``BLUT_JOBS`` or ``jobs``); ``None``: the CPUs blut may use."""
        from blut_core.host.config import parse_jobs

        origin = self.config.values["jobs"].origin if self.config is not None else "BLUT_JOBS"
        return parse_jobs(self.environ.get("BLUT_JOBS"), origin=origin)

    def launcher_options(self, name: str) -> dict[str, Any]:
        """The ``[launcher.NAME]`` table of a config file, for a launcher other than ``local``."""
        return self.config.launcher_options(name) if self.config is not None else {}
