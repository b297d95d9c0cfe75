"""Opt-in pytest fixtures for blut, its plugins and cookbooks.

Enable with ``pytest_plugins = ["blut_core.testing"]`` in a ``conftest.py``. Every test gets
a fresh :class:`App` (no module-global plugin manager) and its own ``BLUT_HOME``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import metadata as md
from pathlib import Path

import click.testing
import pytest

from blut_core.cli import cli
from blut_core.host.app import App
from blut_core.host.manager import COOKBOOK_GROUP, ENTRY_POINT_GROUP, BlutPluginManager, make_plugin_manager
from blut_core.host.settings import Settings


def entry_points_of(distribution: str, group: str = ENTRY_POINT_GROUP) -> list[md.EntryPoint]:
    """The entry points one installed distribution declares in ``group``."""
    return [ep for ep in md.entry_points(group=group)
            if getattr(ep, "dist", None) is not None and ep.dist.name == distribution]  # type: ignore[union-attr]


def builtin_entry_points() -> list[md.EntryPoint]:
    return entry_points_of("blut")


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


@pytest.fixture
def blut_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BLUT_HOME for this test (also exported, for subprocesses)."""
    home = tmp_path / "blut-home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")
    return home


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint] | None:
    """Cookbooks the test app loads (``None``: every installed cookbook). Override it."""
    return None


@pytest.fixture
def plugin_manager(cookbook_entry_points: list[md.EntryPoint] | None) -> BlutPluginManager:
    """A fresh, strict manager: blut's built-in plugins and ``cookbook_entry_points``."""
    return make_plugin_manager(entry_points=builtin_entry_points(),
                               cookbook_entry_points=cookbook_entry_points, strict=True)


@pytest.fixture
def app(plugin_manager: BlutPluginManager, blut_home: Path) -> App:
    """A fresh App over ``plugin_manager``, with a private home."""
    settings = Settings.from_environ({"BLUT_HOME": str(blut_home)})
    return App(plugin_manager, settings)


@pytest.fixture
def invoke(app: App) -> Callable[..., click.testing.Result]:
    """Run the CLI in-process against ``app``: ``invoke("runs", "list", "--json")``."""
    runner = click.testing.CliRunner()

    def _invoke(*args: str) -> click.testing.Result:
        return runner.invoke(cli, list(args), obj=app, catch_exceptions=True)

    return _invoke


@pytest.fixture
def no_stale_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")
    yield


__all__ = ["COOKBOOK_GROUP", "builtin_entry_points", "entry_points_of"]
