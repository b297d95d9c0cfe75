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
    from blut_core._markers import hookimpl as hookimpl
    from blut_core.app import App as App
    from blut_core.attempt import Attempt as Attempt
    from blut_core.broker.admission import Admission as Admission
    from blut_core.broker.admission import Budget as Budget
    from blut_core.broker.calibration import CalibrationKey as CalibrationKey
    from blut_core.broker.calibration import CalibrationStore as CalibrationStore
    from blut_core.broker.cgroupcage import CgroupCage as CgroupCage
    from blut_core.broker.cgroupcage import CgroupLayout as CgroupLayout
    from blut_core.broker.cgroupcage import cgroup_base as cgroup_base
    from blut_core.broker.cgroupcage import cgroup_layout as cgroup_layout
    from blut_core.broker.cgroupcage import check_cgroup_base as check_cgroup_base
    from blut_core.broker.config import BrokerConfig as BrokerConfig
    from blut_core.broker.ledger import Booking as Booking
    from blut_core.broker.ledger import Ledger as Ledger
    from blut_core.broker.policy import MemoryPolicy as MemoryPolicy
    from blut_core.broker.probe import Probe as Probe
    from blut_core.broker.select import Selection as Selection
    from blut_core.broker.service import Broker as Broker
    from blut_core.broker.service import StageEstimate as StageEstimate
    from blut_core.broker.sizes import format_size as format_size
    from blut_core.broker.sizes import parse_size as parse_size
    from blut_core.cache import Cache as Cache
    from blut_core.cache import CacheEntry as CacheEntry
    from blut_core.cookbooks import Cookbook as Cookbook
    from blut_core.cookbooks import CookbookIndex as CookbookIndex
    from blut_core.cookbooks import Recipe as Recipe
    from blut_core.cookbooks import RecipeRef as RecipeRef
    from blut_core.declarations import Backoff as Backoff
    from blut_core.declarations import RetryOn as RetryOn
    from blut_core.declarations import RetryPolicy as RetryPolicy
    from blut_core.declarations import Timeouts as Timeouts
    from blut_core.errors import AdmissionRefused as AdmissionRefused
    from blut_core.errors import BlutError as BlutError
    from blut_core.errors import ConfigError as ConfigError
    from blut_core.errors import LauncherError as LauncherError
    from blut_core.errors import PlanError as PlanError
    from blut_core.errors import PluginConflictError as PluginConflictError
    from blut_core.errors import PluginError as PluginError
    from blut_core.errors import RunFailed as RunFailed
    from blut_core.executor import ExecOptions as ExecOptions
    from blut_core.executor import Executor as Executor
    from blut_core.footprint import Footprint as Footprint
    from blut_core.footprint import Knob as Knob
    from blut_core.interfaces import Cage as Cage
    from blut_core.interfaces import Containment as Containment
    from blut_core.interfaces import FootprintModel as FootprintModel
    from blut_core.interfaces import Launcher as Launcher
    from blut_core.jobs import Job as Job
    from blut_core.jobs import JobHandle as JobHandle
    from blut_core.jobs import JobState as JobState
    from blut_core.jobs import JobStatus as JobStatus
    from blut_core.manager import PluginRecord as PluginRecord
    from blut_core.outcome import Classification as Classification
    from blut_core.outcome import RunInfo as RunInfo
    from blut_core.outcome import RunSummary as RunSummary
    from blut_core.outcome import StageOutcome as StageOutcome
    from blut_core.outcome import StageState as StageState
    from blut_core.plan import Plan as Plan
    from blut_core.records import ContainmentSpec as ContainmentSpec
    from blut_core.records import FootprintModelSpec as FootprintModelSpec
    from blut_core.records import LauncherSpec as LauncherSpec
    from blut_core.records import LineageSinkSpec as LineageSinkSpec
    from blut_core.scheduling import BoundedPolicy as BoundedPolicy
    from blut_core.scheduling import Launch as Launch
    from blut_core.scheduling import Refusal as Refusal
    from blut_core.scheduling import SchedulingPolicy as SchedulingPolicy
    from blut_core.settings import Settings as Settings
    from blut_core.stage import Stage as Stage
    from blut_core.stagectx import StageContext as StageContext
    from blut_core.stagectx import StageFailure as StageFailure

_WHERE = {
    "hookimpl": "_markers",
    "App": "app",
    "Admission": "broker.admission", "Budget": "broker.admission",
    "CalibrationKey": "broker.calibration", "CalibrationStore": "broker.calibration",
    "CgroupCage": "broker.cgroupcage", "CgroupLayout": "broker.cgroupcage",
    "cgroup_base": "broker.cgroupcage", "cgroup_layout": "broker.cgroupcage",
    "check_cgroup_base": "broker.cgroupcage",
    "BrokerConfig": "broker.config",
    "Booking": "broker.ledger", "Ledger": "broker.ledger",
    "MemoryPolicy": "broker.policy",
    "Probe": "broker.probe",
    "Selection": "broker.select",
    "Broker": "broker.service", "StageEstimate": "broker.service",
    "format_size": "broker.sizes", "parse_size": "broker.sizes",
    "Cache": "cache", "CacheEntry": "cache",
    "Cookbook": "cookbooks", "CookbookIndex": "cookbooks", "Recipe": "cookbooks",
    "RecipeRef": "cookbooks",
    "Backoff": "declarations", "RetryOn": "declarations", "RetryPolicy": "declarations",
    "Timeouts": "declarations",
    "AdmissionRefused": "errors", "BlutError": "errors", "ConfigError": "errors",
    "LauncherError": "errors", "PlanError": "errors", "PluginConflictError": "errors",
    "PluginError": "errors", "RunFailed": "errors",
    "Attempt": "attempt", "BoundedPolicy": "scheduling", "ExecOptions": "executor",
    "Launch": "scheduling", "Refusal": "scheduling",
    "Executor": "executor", "SchedulingPolicy": "scheduling",
    "Footprint": "footprint", "Knob": "footprint",
    "Cage": "interfaces", "Containment": "interfaces", "FootprintModel": "interfaces",
    "Job": "jobs",
    "JobHandle": "jobs", "JobState": "jobs", "JobStatus": "jobs",
    "Launcher": "interfaces",
    "Classification": "outcome", "RunInfo": "outcome", "RunSummary": "outcome",
    "StageOutcome": "outcome", "StageState": "outcome",
    "Plan": "plan",
    "ContainmentSpec": "records", "FootprintModelSpec": "records", "LauncherSpec": "records",
    "LineageSinkSpec": "records", "PluginRecord": "manager",
    "Settings": "settings",
    "Stage": "stage",
    "StageContext": "stagectx", "StageFailure": "stagectx",
}

__all__ = [
    "Admission",
    "AdmissionRefused",
    "App",
    "Attempt",
    "Backoff",
    "BlutError",
    "Booking",
    "BoundedPolicy",
    "Broker",
    "BrokerConfig",
    "Budget",
    "Cache",
    "CacheEntry",
    "Cage",
    "CalibrationKey",
    "CalibrationStore",
    "CgroupCage",
    "CgroupLayout",
    "Classification",
    "ConfigError",
    "Containment",
    "ContainmentSpec",
    "Cookbook",
    "CookbookIndex",
    "ExecOptions",
    "Executor",
    "Footprint",
    "FootprintModel",
    "FootprintModelSpec",
    "Job",
    "JobHandle",
    "JobState",
    "JobStatus",
    "Knob",
    "Launch",
    "Launcher",
    "LauncherError",
    "LauncherSpec",
    "Ledger",
    "LineageSinkSpec",
    "MemoryPolicy",
    "Plan",
    "PlanError",
    "PluginConflictError",
    "PluginError",
    "PluginRecord",
    "Probe",
    "Recipe",
    "RecipeRef",
    "Refusal",
    "RetryOn",
    "RetryPolicy",
    "RunFailed",
    "RunInfo",
    "RunSummary",
    "SchedulingPolicy",
    "Selection",
    "Settings",
    "Stage",
    "StageContext",
    "StageEstimate",
    "StageFailure",
    "StageOutcome",
    "StageState",
    "Timeouts",
    "__version__",
    "cgroup_base",
    "cgroup_layout",
    "check_cgroup_base",
    "format_size",
    "hookimpl",
    "parse_size",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'blut_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"blut_core.{module}"), name)
    globals()[name] = value
    return value
