"""Typed records that registration hooks yield, and the plugin record the loader keeps.

Every record is a frozen attrs class; the registry collects them, refuses duplicate names
(naming both providers) and sorts them by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.model.reprs import record_repr

if TYPE_CHECKING:
    from pathlib import Path

    from blut_core.host.interfaces import Launcher

_NAME = r"^[a-z][a-z0-9_-]*$"  # compiled at first use, by re


def _lower_kebab(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not re.match(_NAME, value):
        raise ValueError(
            f"{attribute.name} {value!r} must be lower case letters, digits, '-' or '_'"
        )


@attrs.frozen(kw_only=True)
class LauncherSpec:
    """A launcher a plugin offers: where stages run (``local``, ``slurm``, ``ray``).

    ``factory(options, containment)`` returns a :class:`blut_core.Launcher`: ``options`` is
    the launcher's settings (an instance of ``settings``, or ``None`` when it takes none);
    ``containment`` is the memory containment chosen for this machine (``None``: none).
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_lower_kebab)
    summary: str
    factory: Callable[..., Launcher]
    settings: type[Any] | None = None
    remote: bool = False


@attrs.frozen(kw_only=True)
class ContainmentSpec:
    """A containment backend: how a stage's memory is capped on this machine.

    Backends are probed in ascending ``priority`` (cgroup v2 10, cgroup v1 20, systemd 30,
    rlimit 40, bare 1000) unless ``BLUT_CONTAINMENT`` names one.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_lower_kebab)
    summary: str
    factory: Callable[[], Any]
    priority: int = 100


@attrs.frozen(kw_only=True)
class FootprintModelSpec:
    """A footprint model: turns a stage's declaration and drivers into bytes."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_lower_kebab)
    summary: str
    factory: Callable[[], Any]


@attrs.frozen(kw_only=True)
class LineageSinkSpec:
    """A lineage sink: where finished runs are indexed (``duckdb``, ``jsonl``, a plugin's)."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_lower_kebab)
    summary: str
    factory: Callable[..., Any]


@attrs.frozen(kw_only=True)
class ReportSpec:
    """A report format for one run (``html``): ``render(run_dir)`` returns the whole document.

    ``blut runs report`` and ``blut run --report`` write it to ``<run dir>/report<suffix>``
    unless told where.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_lower_kebab)
    summary: str
    suffix: str
    render: Callable[[Path], str]


@attrs.frozen(kw_only=True)
class SchedulerSpec:
    """A schedule backend: what starts ``blut run`` on a calendar (``systemd``, ``cron``).

    ``factory()`` returns the backend. Without ``--backend``, ``blut schedule`` uses the
    first usable one in ascending ``priority`` (systemd timers 10, cron 20).
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_lower_kebab)
    summary: str
    factory: Callable[[], Any]
    priority: int = 100
