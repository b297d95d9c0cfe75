"""Choosing the containment backend: by ``BLUT_CONTAINMENT``, or the first usable one.

Backends (``blut_containments``) are probed in ascending priority: cgroup v2, cgroup v1,
systemd, rlimit, bare. ``BLUT_CONTAINMENT=NAME`` forces one: an unknown or unusable name is
a one-line :class:`ConfigError`, never a silent fallback. ``auto`` or empty means probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from blut_core.errors import ConfigError
from blut_core.host.interfaces import Containment
from blut_core.model.reprs import record_repr

if TYPE_CHECKING:
    from blut_core.host.registry import Registry


@attrs.frozen(kw_only=True)
class Backend:
    """One installed backend and, when probed, why it cannot be used (``None``: usable)."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str
    priority: int
    summary: str
    plugin: str
    reason: str | None = None
    probed: bool = False

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "priority": self.priority, "summary": self.summary,
                "plugin": self.plugin, "probed": self.probed,
                "usable": self.probed and self.reason is None, "reason": self.reason}


@attrs.frozen(kw_only=True)
class Selection:
    """The containment a run uses, and what was learnt choosing it."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    containment: Containment
    forced: bool
    backends: tuple[Backend, ...]

    @property
    def name(self) -> str:
        return self.containment.name

    @property
    def warning(self) -> str | None:
        """A loud one-liner when stages would run without any memory cap."""
        if self.containment.enforces:
            return None
        why = "; ".join(f"{b.name}: {b.reason}" for b in self.backends if b.probed and b.reason)
        return ("NO MEMORY CONTAINMENT: stages run without a kernel memory cap, so a stage that "
                "outgrows its footprint can take the whole machine down"
                + (f" ({why})" if why else ""))


def _ordered(registry: Registry) -> list[tuple[str, int, str, str]]:
    rows = [(name, p.item.priority, p.item.summary, p.plugin)
            for name, p in registry.containments.items()]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def _make(registry: Registry, name: str) -> Containment:
    item = registry.containments[name].item.factory()
    if not isinstance(item, Containment):
        raise ConfigError(f"containment {name!r} did not produce a Containment "
                          f"(got {type(item).__name__})", hint="report this to its plugin's authors")
    return item


def select_containment(registry: Registry, environ: Mapping[str, str]) -> Selection:
    """The backend to use here (see the module docstring)."""
    wanted = environ.get("BLUT_CONTAINMENT", "").strip()
    rows = _ordered(registry)
    if wanted and wanted != "auto":
        if wanted not in registry.containments:
            raise ConfigError(f"BLUT_CONTAINMENT names unknown containment {wanted!r}",
                              hint=f"installed: {', '.join(r[0] for r in rows)}, or auto")
        chosen = _make(registry, wanted)
        reason = chosen.unusable_reason()
        if reason is not None:
            raise ConfigError(f"containment {wanted!r} (forced by BLUT_CONTAINMENT) is not "
                              f"usable here: {reason}",
                              hint="unset BLUT_CONTAINMENT to use the first usable backend; "
                                   "`blut broker backends` shows each one's state")
        backends = tuple(Backend(name=n, priority=p, summary=s, plugin=pl, probed=n == wanted)
                         for n, p, s, pl in rows)
        return Selection(containment=chosen, forced=True, backends=backends)
    found: list[Backend] = []
    chosen_c: Containment | None = None
    for n, p, s, pl in rows:
        if chosen_c is not None:
            found.append(Backend(name=n, priority=p, summary=s, plugin=pl))
            continue
        candidate = _make(registry, n)
        reason = candidate.unusable_reason()
        found.append(Backend(name=n, priority=p, summary=s, plugin=pl, reason=reason, probed=True))
        if reason is None:
            chosen_c = candidate
    if chosen_c is None:
        raise ConfigError("no containment backend is usable (not even 'bare')",
                          hint="check `blut plugins list`: containment-bare is essential")
    return Selection(containment=chosen_c, forced=False, backends=tuple(found))


def probe_all(registry: Registry) -> list[Backend]:
    """Every installed backend, each probed (``blut broker backends``)."""
    return [Backend(name=n, priority=p, summary=s, plugin=pl,
                    reason=_make(registry, n).unusable_reason(), probed=True)
            for n, p, s, pl in _ordered(registry)]
