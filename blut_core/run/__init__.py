"""Running a plan: orchestration, the executor, attempts, scheduling, resume, progress.

Owns the life of a run from a recipe name to a finished run directory: preparing the plan,
the run's memory-aware scheduling policy over the broker, the executor loop and its attempts,
resume and cancel, live progress, and what a plan would do without running (``plan``).
Imports every package below it; nothing below imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.run.orchestrate import Prepared as Prepared
    from blut_core.run.orchestrate import check_paths as check_paths
    from blut_core.run.orchestrate import prepare as prepare
    from blut_core.run.orchestrate import start_run as start_run
    from blut_core.run.planning import cache_states as cache_states
    from blut_core.run.policy import decide_stage as decide_stage
    from blut_core.run.policy import usable_cpus as usable_cpus
    from blut_core.run.progress import sink_for as sink_for
    from blut_core.run.resume import cancel_run as cancel_run
    from blut_core.run.resume import resume_run as resume_run

_WHERE = {
    "Prepared": "run.orchestrate", "prepare": "run.orchestrate", "start_run": "run.orchestrate",
    "check_paths": "run.orchestrate",
    "cancel_run": "run.resume", "resume_run": "run.resume",
    "cache_states": "run.planning",
    "decide_stage": "run.policy", "usable_cpus": "run.policy",
    "sink_for": "run.progress",
}

__getattr__, __all__ = exports(__name__, _WHERE)
