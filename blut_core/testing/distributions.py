"""Which plugins and cookbooks a test's App loads, and making a distribution look installed.

A test names cookbooks and plugins by entry-point name or by distribution name; these
helpers turn them into the entry points :func:`blut_core.host.manager.make_plugin_manager`
takes, so a test never patches ``importlib.metadata``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata as md
from pathlib import Path

from blut_core.host.manager import COOKBOOK_GROUP, ENTRY_POINT_GROUP

__all__ = ["COOKBOOK_GROUP", "ENTRY_POINT_GROUP", "builtin_entry_points", "entry_points_of",
           "installed_distribution", "named_entry_points"]


def _dist_name(ep: md.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.name)


def entry_points_of(distribution: str, group: str = ENTRY_POINT_GROUP) -> list[md.EntryPoint]:
    """The entry points one installed distribution declares in ``group``."""
    return [ep for ep in md.entry_points(group=group) if _dist_name(ep) == distribution]


def builtin_entry_points() -> list[md.EntryPoint]:
    """blut's own plugins (the ``blut.plugins`` entry points of the ``blut`` distribution)."""
    return entry_points_of("blut")


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def named_entry_points(names: Iterable[str | md.EntryPoint], group: str) -> list[md.EntryPoint]:
    """The installed entry points of ``group`` that ``names`` ask for.

    Each name is an entry-point name (``quickstart``), a distribution name
    (``blut-cookbook-quickstart``: all its entry points in ``group``), or an
    :class:`~importlib.metadata.EntryPoint` passed through as it is (a plugin or cookbook
    under test that is not installed). An unknown name raises :class:`LookupError` saying
    what is installed.
    """
    installed = list(md.entry_points(group=group))
    out: list[md.EntryPoint] = []
    for item in names:
        if isinstance(item, md.EntryPoint):
            out.append(item)
            continue
        want = _normal(item)
        found = [ep for ep in installed if _normal(ep.name) == want] or \
                [ep for ep in installed if _normal(_dist_name(ep) or "") == want]
        if not found:
            kind = "cookbook" if group == COOKBOOK_GROUP else "plugin"
            have = sorted({f"{ep.name} ({_dist_name(ep)})" for ep in installed})
            raise LookupError(f"{kind} {item!r} is not installed (entry points in {group}: "
                              f"{', '.join(have) or 'none'}); pip install -e its distribution")
        out += [ep for ep in found if ep not in out]
    return out


def installed_distribution(site: Path, name: str, version: str,
                           entry_points: Mapping[str, Mapping[str, str]]) -> Path:
    """Make ``site`` hold a distribution's metadata, so that with ``site`` on ``PYTHONPATH`` a
    blut process sees its ``entry_points`` (group -> name -> ``module:object``) as installed.

    Returns ``site``. For tests and benchmarks that run blut as a subprocess with a cookbook
    or plugin that is not really installed.
    """
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {target}\n" for key, target in eps.items())
        for group, eps in entry_points.items()))
    return site
