"""The quickstart cookbook's tests see this cookbook alone, whatever else is installed.

blut's fixtures (``app``, ``invoke``, ``blut_home``, ``run_recipe``…) come from its pytest
plugin, active wherever blut is installed; this only chooses the cookbook the test App loads
(a test module could say ``pytestmark = pytest.mark.blut(cookbooks=["quickstart"])``
instead).
"""

from __future__ import annotations

from importlib import metadata as md

import pytest


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    """The test app sees this cookbook alone (as installed)."""
    from blut_core.testing import COOKBOOK_GROUP, entry_points_of

    eps = entry_points_of("blut-cookbook-quickstart", COOKBOOK_GROUP)
    assert eps, "blut-cookbook-quickstart is not installed: pip install -e cookbooks/quickstart"
    return eps
