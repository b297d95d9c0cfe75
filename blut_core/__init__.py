"""blut's public surface for plugins, cookbooks and stage authors.

Import from ``blut_core`` (and, for what a command, a sink or a launcher needs beyond it,
from the documented facades ``blut_core.store``, ``blut_core.lineage``, ``blut_core.broker``,
``blut_core.run``, ``blut_core.process``, ``blut_core.host``, ``blut_core.cli`` and
``blut_core.testing``), never from a module inside them. Names load lazily, so that a stage
process or ``blut --help`` pays only for what it uses.

The house, bottom up (each package imports only those below it):

- ``errors`` and ``model``: Stage, Plan, Recipe, Footprint, and the records a run produces;
- ``host``: hookspecs, the plugin manager, registry, App, settings, logging;
- ``store``: the run directory (the source of truth) and the content-addressed cache;
- ``broker`` and ``lineage``: memory policy (probe, admission, calibration, ledger) and the
  lineage index (extract, ingest, diff) over the model and the store;
- ``process``: the stage process contract every launcher shares (context, runner);
- ``run``: running a plan (orchestration, executor, attempts, scheduling, resume, progress);
- ``cli`` and ``testing`` on top.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports
from blut_core._version import __version__ as __version__

if TYPE_CHECKING:
    from blut_core.broker.admission import Admission as Admission
    from blut_core.broker.admission import Budget as Budget
    from blut_core.broker.calibration import CalibrationKey as CalibrationKey
    from blut_core.broker.calibration import CalibrationStore as CalibrationStore
    from blut_core.broker.config import BrokerConfig as BrokerConfig
    from blut_core.broker.ledger import Booking as Booking
    from blut_core.broker.ledger import Ledger as Ledger
    from blut_core.broker.machine import Probe as Probe
    from blut_core.broker.select import Selection as Selection
    from blut_core.errors import AdmissionRefused as AdmissionRefused
    from blut_core.errors import BlutError as BlutError
    from blut_core.errors import ConfigError as ConfigError
    from blut_core.errors import LauncherError as LauncherError
    from blut_core.errors import PlanError as PlanError
    from blut_core.errors import PluginConflictError as PluginConflictError
    from blut_core.errors import PluginError as PluginError
    from blut_core.errors import RunFailed as RunFailed
    from blut_core.host.app import App as App
    from blut_core.host.cookbooks import CookbookIndex as CookbookIndex
    from blut_core.host.cookbooks import RecipeRef as RecipeRef
    from blut_core.host.interfaces import Cage as Cage
    from blut_core.host.interfaces import Containment as Containment
    from blut_core.host.interfaces import FootprintModel as FootprintModel
    from blut_core.host.interfaces import Launcher as Launcher
    from blut_core.host.interfaces import ProcessGroupCage as ProcessGroupCage
    from blut_core.host.manager import PluginRecord as PluginRecord
    from blut_core.host.markers import hookimpl as hookimpl
    from blut_core.host.records import ContainmentSpec as ContainmentSpec
    from blut_core.host.records import FootprintModelSpec as FootprintModelSpec
    from blut_core.host.records import LauncherSpec as LauncherSpec
    from blut_core.host.records import LineageSinkSpec as LineageSinkSpec
    from blut_core.host.records import ReportSpec as ReportSpec
    from blut_core.host.records import SchedulerSpec as SchedulerSpec
    from blut_core.host.settings import Settings as Settings
    from blut_core.model.declarations import Backoff as Backoff
    from blut_core.model.declarations import RetryOn as RetryOn
    from blut_core.model.declarations import RetryPolicy as RetryPolicy
    from blut_core.model.declarations import Timeouts as Timeouts
    from blut_core.model.footprint import Footprint as Footprint
    from blut_core.model.footprint import Knob as Knob
    from blut_core.model.jobs import Job as Job
    from blut_core.model.jobs import JobHandle as JobHandle
    from blut_core.model.jobs import JobState as JobState
    from blut_core.model.jobs import JobStatus as JobStatus
    from blut_core.model.outcome import Classification as Classification
    from blut_core.model.outcome import RunInfo as RunInfo
    from blut_core.model.outcome import RunSummary as RunSummary
    from blut_core.model.outcome import StageOutcome as StageOutcome
    from blut_core.model.outcome import StageState as StageState
    from blut_core.model.plan import Plan as Plan
    from blut_core.model.recipe import CookbookSpec as CookbookSpec
    from blut_core.model.recipe import Recipe as Recipe
    from blut_core.model.sizes import format_size as format_size
    from blut_core.model.sizes import parse_size as parse_size
    from blut_core.model.stage import Stage as Stage
    from blut_core.process.context import StageContext as StageContext
    from blut_core.process.context import StageFailure as StageFailure
    from blut_core.run.attempt import Attempt as Attempt
    from blut_core.run.executor import ExecOptions as ExecOptions
    from blut_core.run.executor import Executor as Executor
    from blut_core.run.policy import MemoryPolicy as MemoryPolicy
    from blut_core.run.scheduling import BoundedPolicy as BoundedPolicy
    from blut_core.run.scheduling import Launch as Launch
    from blut_core.run.scheduling import Refusal as Refusal
    from blut_core.run.scheduling import SchedulingPolicy as SchedulingPolicy
    from blut_core.run.service import Broker as Broker
    from blut_core.run.service import StageEstimate as StageEstimate
    from blut_core.store.cache import Cache as Cache
    from blut_core.store.cache import CacheEntry as CacheEntry

_WHERE = {
    "hookimpl": "host.markers",
    "App": "host.app",
    "Admission": "broker.admission", "Budget": "broker.admission",
    "CalibrationKey": "broker.calibration", "CalibrationStore": "broker.calibration",
    "BrokerConfig": "broker.config",
    "Booking": "broker.ledger", "Ledger": "broker.ledger",
    "Probe": "broker.machine",
    "Selection": "broker.select",
    "MemoryPolicy": "run.policy",
    "Broker": "run.service", "StageEstimate": "run.service",
    "format_size": "model.sizes", "parse_size": "model.sizes",
    "Cache": "store.cache", "CacheEntry": "store.cache",
    "CookbookSpec": "model.recipe", "Recipe": "model.recipe",
    "CookbookIndex": "host.cookbooks", "RecipeRef": "host.cookbooks",
    "Backoff": "model.declarations", "RetryOn": "model.declarations",
    "RetryPolicy": "model.declarations", "Timeouts": "model.declarations",
    "AdmissionRefused": "errors", "BlutError": "errors", "ConfigError": "errors",
    "LauncherError": "errors", "PlanError": "errors", "PluginConflictError": "errors",
    "PluginError": "errors", "RunFailed": "errors",
    "Attempt": "run.attempt",
    "BoundedPolicy": "run.scheduling", "Launch": "run.scheduling", "Refusal": "run.scheduling",
    "SchedulingPolicy": "run.scheduling",
    "ExecOptions": "run.executor", "Executor": "run.executor",
    "Footprint": "model.footprint", "Knob": "model.footprint",
    "Cage": "host.interfaces", "Containment": "host.interfaces", "FootprintModel": "host.interfaces",
    "Launcher": "host.interfaces", "ProcessGroupCage": "host.interfaces",
    "Job": "model.jobs", "JobHandle": "model.jobs", "JobState": "model.jobs", "JobStatus": "model.jobs",
    "Classification": "model.outcome", "RunInfo": "model.outcome", "RunSummary": "model.outcome",
    "StageOutcome": "model.outcome", "StageState": "model.outcome",
    "Plan": "model.plan",
    "ContainmentSpec": "host.records", "FootprintModelSpec": "host.records",
    "LauncherSpec": "host.records", "LineageSinkSpec": "host.records",
    "ReportSpec": "host.records", "SchedulerSpec": "host.records",
    "PluginRecord": "host.manager",
    "Settings": "host.settings",
    "Stage": "model.stage",
    "StageContext": "process.context", "StageFailure": "process.context",
}

__getattr__, __all__ = exports(__name__, _WHERE)
__all__ += ["__version__"]
