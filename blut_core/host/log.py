"""structlog to stderr, configured by the CLI; imported only when something is logged.

structlog costs ~100 ms to import, so ``blut --help`` must not pay for it: modules call
:func:`get_logger`, which returns a proxy that imports and configures structlog on first use.
"""

from __future__ import annotations

import sys
from typing import Any

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_state: dict[str, Any] = {"level": "warning", "fmt": "auto", "configured": False}


def configure_logging(*, level: str = "warning", fmt: str = "auto") -> None:
    """Choose level and format (``console``, ``json``, ``auto``: console on a terminal)."""
    _state.update(level=level, fmt=fmt, configured=False)


def _configure() -> None:
    import structlog

    fmt = _state["fmt"]
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if console:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    else:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[_state["level"]]),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _state["configured"] = True


class _LazyLogger:
    """Forwards to a structlog logger, importing structlog on the first call."""

    def __getattr__(self, name: str) -> Any:
        level = _LEVELS.get(name)
        if level is not None and level < _LEVELS[_state["level"]]:
            return _drop
        if not _state["configured"]:
            _configure()
        import structlog

        return getattr(structlog.get_logger("blut"), name)


def _drop(*_: Any, **__: Any) -> None:
    return None


def get_logger() -> Any:
    """The logger to use everywhere in blut: ``get_logger().info("event_name", key=value)``."""
    return _LazyLogger()
