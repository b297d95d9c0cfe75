"""blut's public surface for plugins, cookbooks and stage authors.

Import from ``blut_core``, never from ``blut_core.<module>`` (``blut_core.testing`` is the
exception for test code). Names load lazily so that a stage process or ``blut --help``
pays only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from blut_core._version import __version__

if TYPE_CHECKING:
    from blut_core._markers import hookimpl
    from blut_core.app import App
    from blut_core.cache import Cache, CacheEntry
    from blut_core.cookbooks import Cookbook, CookbookIndex, Recipe, RecipeRef
    from blut_core.declarations import Backoff, RetryOn, RetryPolicy, Timeouts
    from blut_core.errors import (
        AdmissionRefused,
        BlutError,
        ConfigError,
        LauncherError,
        PlanError,
        PluginConflictError,
        PluginError,
        RunFailed,
    )
    from blut_core.executor import Attempt, BoundedPolicy, ExecOptions, Executor, SchedulingPolicy
    from blut_core.footprint import Footprint
    from blut_core.interfaces import (
        Cage,
        Containment,
        Job,
        JobHandle,
        JobState,
        JobStatus,
        Launcher,
    )
    from blut_core.outcome import Classification, RunInfo, RunSummary, StageOutcome, StageState
    from blut_core.plan import Plan
    from blut_core.records import (
        ContainmentSpec,
        FootprintModelSpec,
        LauncherSpec,
        LineageSinkSpec,
        PluginRecord,
    )
    from blut_core.settings import Settings
    from blut_core.stage import Stage
    from blut_core.stagectx import StageContext, StageFailure

_WHERE = {
    "hookimpl": "_markers",
    "App": "app",
    "Cache": "cache", "CacheEntry": "cache",
    "Cookbook": "cookbooks", "CookbookIndex": "cookbooks", "Recipe": "cookbooks",
    "RecipeRef": "cookbooks",
    "Backoff": "declarations", "RetryOn": "declarations", "RetryPolicy": "declarations",
    "Timeouts": "declarations",
    "AdmissionRefused": "errors", "BlutError": "errors", "ConfigError": "errors",
    "LauncherError": "errors", "PlanError": "errors", "PluginConflictError": "errors",
    "PluginError": "errors", "RunFailed": "errors",
    "Attempt": "executor", "BoundedPolicy": "executor", "ExecOptions": "executor",
    "Executor": "executor", "SchedulingPolicy": "executor",
    "Footprint": "footprint",
    "Cage": "interfaces", "Containment": "interfaces", "Job": "interfaces",
    "JobHandle": "interfaces", "JobState": "interfaces", "JobStatus": "interfaces",
    "Launcher": "interfaces",
    "Classification": "outcome", "RunInfo": "outcome", "RunSummary": "outcome",
    "StageOutcome": "outcome", "StageState": "outcome",
    "Plan": "plan",
    "ContainmentSpec": "records", "FootprintModelSpec": "records", "LauncherSpec": "records",
    "LineageSinkSpec": "records", "PluginRecord": "records",
    "Settings": "settings",
    "Stage": "stage",
    "StageContext": "stagectx", "StageFailure": "stagectx",
}

__all__ = sorted([*_WHERE, "__version__"])


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'blut_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"blut_core.{module}"), name)
    globals()[name] = value
    return value
