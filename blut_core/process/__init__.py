"""The stage process contract every launcher shares.

Owns what a stage sees (:class:`~blut_core.process.context.StageContext`), the runner that
executes a Python stage in a process (``python -m blut_core.process.runner CONTEXT``), and how
an attempt becomes a process (its context file, environment and argv). The context and the
runner import nothing heavy: they start with every stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.process.runner import EXIT_DETERMINISTIC as EXIT_DETERMINISTIC
    from blut_core.process.runner import run_stage as run_stage
    from blut_core.process.shim import read_record as read_record
    from blut_core.process.shim import run_shim as run_shim
    from blut_core.process.shim import write_record as write_record
    from blut_core.process.spec import jsonable as jsonable
    from blut_core.process.spec import prepare_attempt as prepare_attempt
    from blut_core.process.spec import prepare_launcher as prepare_launcher
    from blut_core.process.spec import read_events_from as read_events_from
    from blut_core.process.spec import stage_argv as stage_argv
    from blut_core.process.spec import stage_environment as stage_environment
    from blut_core.process.spec import stage_pythonpath as stage_pythonpath

_WHERE = {
    "jsonable": "process.spec", "prepare_attempt": "process.spec", "prepare_launcher": "process.spec",
    "read_events_from": "process.spec", "stage_argv": "process.spec",
    "stage_environment": "process.spec", "stage_pythonpath": "process.spec",
    "EXIT_DETERMINISTIC": "process.runner", "run_stage": "process.runner",
    "read_record": "process.shim", "write_record": "process.shim",
    "run_shim": "process.shim",
}

__getattr__, __all__ = exports(__name__, _WHERE)
