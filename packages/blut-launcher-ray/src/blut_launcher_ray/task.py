"""What a Ray worker runs: one stage attempt through the shim, in the worker's own process.

A worker imports this module when it first runs a task of blut's: it imports only ``os``,
``time`` and the shim (a few standard modules), not the launcher, attrs or Ray's API, so
that a worker just started is ready for its first stage at once.
"""

from __future__ import annotations

import os
import time
from typing import Any


def run_attempt(record: str, argv: list[str], env: dict[str, str], cwd: str, stdout: str, stderr: str,
                cap: int | None, dirs: list[str]) -> dict[str, Any] | None:
    """Run the stage to its end in a cgroup capped at ``cap`` (a cancel's exception kills that
    cgroup on its way out) and return its exit record as written to ``record``, read back
    here: the driver has it with the task's result, and knows that the file is in place.
    ``None`` when the record cannot be read back on this node (the driver then looks for it).
    """
    from blut_core.process import read_record, run_shim, write_record

    for path in dirs:
        os.makedirs(path, exist_ok=True)
    try:
        # no fsync of the record: it goes back with the task's result too (write_record)
        run_shim(record, argv, cap=cap, cwd=cwd, env=env, stdout=stdout, stderr=stderr, sync=False)
    except SystemExit as exc:  # the shim could not cap the stage here: one line, and a record
        with open(stderr, "a", encoding="utf-8") as fh:
            print(exc, file=fh)
        now = time.time()
        write_record(record, {"version": 1, "returncode": 2, "signal": None, "peak_bytes": None,
                              "oom_kills": 0, "node": os.uname().nodename, "started_at": now,
                              "ended_at": now, "error": str(exc)}, sync=False)
    return read_record(record)

