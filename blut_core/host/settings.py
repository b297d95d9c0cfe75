"""Process settings read once from the environment (``BLUT_*``), never scattered."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple


def default_home() -> Path:
    """``$BLUT_HOME``, else the user's data directory (``~/.local/share/blut`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("blut", appauthor=False))


class Settings(NamedTuple):
    """What the environment says. ``home`` holds runs, the cache and the lineage DB.

    A NamedTuple (an immutable typed record) rather than an attrs class: it is built at
    every start of the CLI, before any command runs.
    """

    home_override: Path | None = None
    disabled_plugins: tuple[str, ...] = ()
    strict_plugins: bool = False
    environ: Mapping[str, str] = {}

    def __repr__(self) -> str:
        return (f"Settings(home={self.home_override!r}, disabled_plugins={self.disabled_plugins!r}, "
                f"strict_plugins={self.strict_plugins!r})")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home_text = env.get("BLUT_HOME", "").strip()
        home = Path(home_text).expanduser() if home_text else None
        disabled = tuple(n.strip() for n in env.get("BLUT_DISABLE_PLUGINS", "").split(",") if n.strip())
        strict = env.get("BLUT_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}
        return cls(home_override=home, disabled_plugins=disabled, strict_plugins=strict,
                   environ=env)

    @property
    def home(self) -> Path:
        """``$BLUT_HOME``, else the user's data directory (looked up only when needed)."""
        return self.home_override if self.home_override is not None else default_home()

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"
