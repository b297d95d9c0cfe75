"""Testing blut, its plugins and cookbooks: a pytest plugin, helpers and contract suites.

Installing blut registers its pytest plugin (:mod:`blut_core.testing.plugin`, the ``blut``
entry point of ``pytest11``), so a cookbook's tests use its fixtures with no
``conftest.py``: ``blut_home`` (a private ``BLUT_HOME``), ``app`` (a fresh App; choose its
cookbooks with ``@pytest.mark.blut(cookbooks=[...])``), ``blut_app(cookbooks=[...])``,
``invoke`` (the CLI in-process), ``run_recipe(name, **params)`` (a real run, returning its
:class:`~blut_core.model.outcome.RunSummary`) and ``assert_peak_within_declaration(summary,
stage)``. The contract suites a plugin's tests subclass are in
:mod:`blut_core.testing.contracts`. Names load lazily.

- :mod:`.fixtures`: the fixtures and :func:`make_app`;
- :mod:`.running`: running a recipe, and a stage's measured peak against its declaration;
- :mod:`.box`: a memory cgroup to run ``blut`` in as on a small machine (:func:`memory_box`,
  :func:`in_box`, :func:`oom_kills`);
- :mod:`.distributions`: choosing entry points, and making a distribution look installed;
- :mod:`.imports`: which modules blut commands import (:func:`imports_of_commands`), to keep a
  cookbook's heavy imports out of listing and checking its recipes;
- :mod:`.contracts`: containment, footprint model and lineage sink suites;
- :mod:`.book`: the small cookbook the contract suites run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.testing.box import in_box as in_box
    from blut_core.testing.box import memory_box as memory_box
    from blut_core.testing.box import oom_kills as oom_kills
    from blut_core.testing.distributions import COOKBOOK_GROUP as COOKBOOK_GROUP
    from blut_core.testing.distributions import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from blut_core.testing.distributions import builtin_entry_points as builtin_entry_points
    from blut_core.testing.distributions import entry_points_of as entry_points_of
    from blut_core.testing.distributions import installed_distribution as installed_distribution
    from blut_core.testing.distributions import named_entry_points as named_entry_points
    from blut_core.testing.fixtures import make_app as make_app
    from blut_core.testing.imports import CommandImports as CommandImports
    from blut_core.testing.imports import imports_of_commands as imports_of_commands
    from blut_core.testing.running import PeakCheck as PeakCheck
    from blut_core.testing.running import RunRecipe as RunRecipe
    from blut_core.testing.running import assert_peak_within_declaration as assert_peak_within_declaration
    from blut_core.testing.running import declared_peaks as declared_peaks

_WHERE = {
    "in_box": "testing.box", "memory_box": "testing.box", "oom_kills": "testing.box",
    "COOKBOOK_GROUP": "testing.distributions", "ENTRY_POINT_GROUP": "testing.distributions",
    "builtin_entry_points": "testing.distributions", "entry_points_of": "testing.distributions",
    "installed_distribution": "testing.distributions",
    "named_entry_points": "testing.distributions",
    "make_app": "testing.fixtures",
    "CommandImports": "testing.imports", "imports_of_commands": "testing.imports",
    "PeakCheck": "testing.running", "RunRecipe": "testing.running",
    "assert_peak_within_declaration": "testing.running", "declared_peaks": "testing.running",
}

__getattr__, __all__ = exports(__name__, _WHERE)
