"""blut's pytest plugin, registered as the ``blut`` entry point of the ``pytest11`` group.

Installing blut makes it active in every pytest session of that environment, so a
cookbook's or plugin's tests need no ``conftest.py`` to use its fixtures (listed in
:mod:`blut_core.testing.fixtures`): ``blut_home``, ``app``, ``blut_app``, ``invoke``,
``run_recipe``, ``assert_peak_within_declaration``, ``cookbook_entry_points``,
``plugin_entry_points``, ``plugin_manager``. It declares the ``blut`` marker and has pytest
rewrite the asserts of the contract suites (:mod:`blut_core.testing.contracts`), so a
failing contract test shows its values. Loading it imports nothing heavy. ``-p no:blut``
turns it off.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("blut_core.testing.contracts", "blut_core.testing.running")

from blut_core.testing.fixtures import (  # noqa: E402 - after the rewrite registration
    MARKER,
    MARKER_HELP,
    app,
    assert_peak_within_declaration,
    blut_app,
    blut_home,
    cookbook_entry_points,
    invoke,
    no_stale_check,
    plugin_entry_points,
    plugin_manager,
    run_recipe,
)

__all__ = ["app", "assert_peak_within_declaration", "blut_app", "blut_home",
           "cookbook_entry_points", "invoke", "no_stale_check", "plugin_entry_points",
           "plugin_manager", "pytest_configure", "run_recipe"]


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``blut`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line("markers", f"{MARKER}: {MARKER_HELP}")
