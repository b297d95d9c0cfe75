from __future__ import annotations

from importlib import metadata as md

import pytest

from blut_core.testing import COOKBOOK_GROUP, entry_points_of

TESTBOOK = md.EntryPoint(name="testbook", value="tests.support.cookbook", group=COOKBOOK_GROUP)


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [TESTBOOK, *entry_points_of("blut-cookbook-quickstart", COOKBOOK_GROUP)]
