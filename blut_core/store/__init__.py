"""What a run leaves on disk: the run directory (the source of truth) and the cache.

Owns the run directory's layout, its append-only status stream, reading runs back, and the
content-addressed cache of stage outputs. Imports :mod:`blut_core.model` and
:mod:`blut_core.host` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.store.cache import cache_key as cache_key
    from blut_core.store.rundir import STATUS as STATUS
    from blut_core.store.rundir import RunDir as RunDir
    from blut_core.store.rundir import driver_alive as driver_alive
    from blut_core.store.rundir import process_alive as process_alive
    from blut_core.store.rundir import read_events as read_events
    from blut_core.store.rundir import read_status as read_status
    from blut_core.store.rundir import tail_line as tail_line
    from blut_core.store.rundir import write_json_atomic as write_json_atomic
    from blut_core.store.runs import RunRecord as RunRecord
    from blut_core.store.runs import find_run as find_run
    from blut_core.store.runs import is_run_dir as is_run_dir
    from blut_core.store.runs import list_runs as list_runs
    from blut_core.store.runs import load_run as load_run
    from blut_core.store.runs import read_json as read_json

_WHERE = {
    "STATUS": "store.rundir", "RunDir": "store.rundir", "driver_alive": "store.rundir",
    "process_alive": "store.rundir",
    "read_events": "store.rundir", "read_status": "store.rundir", "tail_line": "store.rundir",
    "write_json_atomic": "store.rundir",
    "RunRecord": "store.runs", "find_run": "store.runs", "is_run_dir": "store.runs",
    "list_runs": "store.runs",
    "load_run": "store.runs", "read_json": "store.runs",
    "cache_key": "store.cache",
}

__getattr__, __all__ = exports(__name__, _WHERE)
