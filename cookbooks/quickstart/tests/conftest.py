"""The quickstart cookbook's tests: blut's fixtures, and only this cookbook installed.

``pytest_plugins`` may only be set in a top-level conftest, and this one is top-level only
when these tests run on their own (``python -m pytest cookbooks/quickstart/tests``); from
the repository root (``python -m pytest``) it is not. Importing the plugin from
``pytest_configure`` works both ways, and does nothing when it is already registered.
"""

from __future__ import annotations

from importlib import metadata as md

import pytest

COOKBOOK_GROUP = "blut.cookbooks"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("blut_core.testing")


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    """The test app sees this cookbook alone (as installed), whatever else is installed."""
    from blut_core.testing import entry_points_of

    eps = entry_points_of("blut-cookbook-quickstart", COOKBOOK_GROUP)
    assert eps, "blut-cookbook-quickstart is not installed: pip install -e cookbooks/quickstart"
    return eps
