from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import metadata as md
from pathlib import Path
from typing import Any

import pytest

from blut_core.host.app import App
from blut_core.run.orchestrate import prepare, start_run
from blut_core.testing import COOKBOOK_GROUP, entry_points_of

LBOOK = md.EntryPoint(name="lbook", value="tests.lineage.book", group=COOKBOOK_GROUP)


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [LBOOK, *entry_points_of("blut-cookbook-quickstart", COOKBOOK_GROUP)]


@pytest.fixture(autouse=True)
def _sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BLUT_LINEAGE_SINKS", raising=False)


@pytest.fixture
def run(app: App) -> Callable[..., Any]:
    """Run a recipe in-process (ingest happens through the real run_finished hook)."""
    def _run(recipe: str, *overrides: str) -> Any:
        return start_run(app, prepare(app, recipe, overrides=list(overrides)))

    return _run


@pytest.fixture
def cli_env(blut_home: Path) -> dict[str, str]:
    """Environment for the installed `blut` console script."""
    return {**os.environ, "BLUT_HOME": str(blut_home), "BLUT_NO_STALE_CHECK": "1",
            "BLUT_LOG_FORMAT": "json"}


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)
