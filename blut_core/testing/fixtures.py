"""The fixtures blut's pytest plugin provides (see :mod:`blut_core.testing.plugin`).

Every test gets its own ``BLUT_HOME`` and a fresh :class:`~blut_core.host.app.App` (no
module-global plugin manager). Which cookbooks and extra plugins that App loads is chosen
with a marker, ``@pytest.mark.blut(cookbooks=[...], plugins=[...])`` (on a test, a class, or
a module as ``pytestmark``), or by overriding the ``cookbook_entry_points`` fixture in a
``conftest.py``; ``blut_app(cookbooks=[...])`` makes another App in the same test.

Heavy imports (click, the CLI, the run machinery) happen inside the fixtures, so that loading
the plugin costs every pytest session nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from importlib import metadata as md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import click.testing

    from blut_core.host.app import App
    from blut_core.host.manager import BlutPluginManager
    from blut_core.model.outcome import RunSummary
    from blut_core.testing.running import PeakCheck, RunRecipe

__all__ = ["app", "assert_peak_within_declaration", "blut_app", "blut_home",
           "cookbook_entry_points", "invoke", "make_app", "no_stale_check", "plugin_entry_points",
           "plugin_manager", "run_recipe"]

MARKER = "blut"
MARKER_HELP = ("blut(cookbooks=[...], plugins=[...]): the cookbooks (entry-point or distribution "
               "names) the test's App loads instead of every installed one, and installed "
               "plugins it loads besides blut's built-ins")


def _marker_list(request: pytest.FixtureRequest, key: str) -> list[Any] | None:
    """The ``key`` argument of the closest ``blut`` marker that sets it, if any."""
    for marker in request.node.iter_markers(MARKER):
        if key in marker.kwargs:
            return list(marker.kwargs[key])
    return None


def _lookup(names: Iterable[str | md.EntryPoint], group: str) -> list[md.EntryPoint]:
    from blut_core.testing.distributions import named_entry_points

    try:
        return named_entry_points(names, group)
    except LookupError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


def make_app(home: Path, *, cookbooks: Iterable[str | md.EntryPoint] | None = None,
             plugins: Iterable[str | md.EntryPoint] = (), strict: bool = True) -> App:
    """An App over blut's built-ins, ``plugins`` and ``cookbooks``, living in ``home``.

    ``cookbooks=None`` loads every installed cookbook. Names are entry-point or
    distribution names (see :func:`~blut_core.testing.distributions.named_entry_points`).
    """
    from blut_core.host.app import App
    from blut_core.host.manager import COOKBOOK_GROUP, ENTRY_POINT_GROUP, make_plugin_manager
    from blut_core.host.settings import Settings
    from blut_core.testing.distributions import builtin_entry_points

    eps = builtin_entry_points()
    eps += [ep for ep in _lookup(plugins, ENTRY_POINT_GROUP) if ep not in eps]
    books = None if cookbooks is None else _lookup(cookbooks, COOKBOOK_GROUP)
    pm = make_plugin_manager(entry_points=eps, cookbook_entry_points=books, strict=strict)
    return App(pm, Settings.from_environ({"BLUT_HOME": str(home)}))


@pytest.fixture
def blut_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BLUT_HOME for this test (also exported, for subprocesses)."""
    home = tmp_path / "blut-home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")
    return home


@pytest.fixture
def cookbook_entry_points(request: pytest.FixtureRequest) -> list[md.EntryPoint] | None:
    """Cookbooks the test app loads: the ``blut`` marker's ``cookbooks``, else every
    installed one (``None``). Override it in a conftest to choose for a whole directory."""
    from blut_core.host.manager import COOKBOOK_GROUP

    names = _marker_list(request, "cookbooks")
    return None if names is None else _lookup(names, COOKBOOK_GROUP)


@pytest.fixture
def plugin_entry_points(request: pytest.FixtureRequest) -> list[md.EntryPoint]:
    """Plugins the test app loads: blut's built-ins and the ``blut`` marker's ``plugins``."""
    from blut_core.host.manager import ENTRY_POINT_GROUP
    from blut_core.testing.distributions import builtin_entry_points

    eps = builtin_entry_points()
    return eps + [ep for ep in _lookup(_marker_list(request, "plugins") or (), ENTRY_POINT_GROUP)
                  if ep not in eps]


@pytest.fixture
def plugin_manager(plugin_entry_points: list[md.EntryPoint],
                   cookbook_entry_points: list[md.EntryPoint] | None) -> BlutPluginManager:
    """A fresh, strict manager over ``plugin_entry_points`` and ``cookbook_entry_points``."""
    from blut_core.host.manager import make_plugin_manager

    return make_plugin_manager(entry_points=plugin_entry_points,
                               cookbook_entry_points=cookbook_entry_points, strict=True)


@pytest.fixture
def app(plugin_manager: BlutPluginManager, blut_home: Path) -> App:
    """A fresh App over ``plugin_manager``, with a private home."""
    from blut_core.host.app import App
    from blut_core.host.settings import Settings

    return App(plugin_manager, Settings.from_environ({"BLUT_HOME": str(blut_home)}))


@pytest.fixture
def blut_app(blut_home: Path) -> Callable[..., App]:
    """``blut_app(cookbooks=["quickstart"], plugins=[...])``: another App, same private home."""

    def _make(*, cookbooks: Iterable[str | md.EntryPoint] | None = None,
              plugins: Iterable[str | md.EntryPoint] = (), strict: bool = True) -> App:
        return make_app(blut_home, cookbooks=cookbooks, plugins=plugins, strict=strict)

    return _make


@pytest.fixture
def invoke(app: App) -> Callable[..., click.testing.Result]:
    """Run the CLI in-process against ``app``: ``invoke("runs", "list", "--json")``."""
    import click.testing

    from blut_core.cli.root import cli

    runner = click.testing.CliRunner()

    def _invoke(*args: str) -> click.testing.Result:
        return runner.invoke(cli, list(args), obj=app, catch_exceptions=True)

    return _invoke


@pytest.fixture
def run_recipe(app: App) -> RunRecipe:
    """``run_recipe("cookbook:recipe", **params) -> RunSummary``: a real run, in this process."""
    from blut_core.testing.running import RunRecipe

    return RunRecipe(app)


@pytest.fixture
def assert_peak_within_declaration(app: App) -> Callable[..., list[PeakCheck]]:
    """``assert_peak_within_declaration(summary, "stage", at_most=1.0)``: the kernel's peak of
    every attempt of the stage is at most ``at_most`` × what its declaration gives."""
    from blut_core.testing.running import assert_peak_within_declaration as check

    def _check(run: RunSummary | Path | str, stage: str, *, at_most: float = 1.0) -> list[PeakCheck]:
        return check(app, run, stage, at_most=at_most)

    return _check


@pytest.fixture
def no_stale_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Silence the "installed blut is older than its source" warning."""
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")
    yield
