"""What a one-stage ``blut run`` imports: every module is paid for by every run, so those a
plain run does not use stay out of it (this keeps the start of ``blut run`` fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut_core.testing import COOKBOOK_GROUP, imports_of_commands, installed_distribution

ONEBOOK = '''
import attrs

from blut_core import CookbookSpec, Footprint, Plan, Recipe, Stage, hookimpl


@attrs.frozen
class NoParams:
    pass


def one(p: NoParams) -> Plan:
    return Plan.of(Stage.command("s", ["true"], footprint=Footprint.fixed("16M")))


@hookimpl
def blut_cookbooks():
    yield CookbookSpec(name="onebook", summary="one command stage")


@hookimpl
def blut_recipes():
    yield Recipe(name="one", summary="one `true` stage", params=NoParams, build=one)
'''

#: Modules a run of a stage without params has no use for.
NOT_FOR_A_PLAIN_RUN = [
    "hashlib",            # sha256 names params (calibration keys, lineage): no params, no sha256
    "blut_core.model.capacity",  # what a remote launcher can give
    # the other built-in commands' modules (registered with lazy_command)
    *(f"blut_plugins.cli._{m}" for m in ("broker", "cancel", "config", "logs", "metrics", "plan",
                                         "plugins", "recipes", "resume")),
]


def test_a_one_stage_run_imports_only_what_it_uses(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "onebook_mod.py").write_text(ONEBOOK)
    site = installed_distribution(tmp_path / "site", "blut-onebook", "0",
                                  {COOKBOOK_GROUP: {"onebook": "onebook_mod"}})
    monkeypatch.setenv("PYTHONPATH", f"{site}:{tmp_path}:{Path(__file__).resolve().parents[2]}")
    ran = imports_of_commands([["run", "onebook:one", "--no-progress"]], NOT_FOR_A_PLAIN_RUN,
                              home=tmp_path / "home")
    assert ran.codes == [None] or ran.codes == [0], ran
    assert ran.imported == []
