"""The resource broker's policy and state: never let a run take the machine out of memory.

Owns the probe (the box now: RAM, MemAvailable, blut's own cgroup limit), the broker's knobs,
admission as pure functions (refuse, wait, right-size, admit with a cap), the calibration
store, the machine-wide booking ledger, footprint resolution and the choice of containment.
Imports :mod:`blut_core.model`, :mod:`blut_core.host` and :mod:`blut_core.store`; the run's
scheduling policy over it lives in :mod:`blut_core.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.broker.admission import admit as admit
    from blut_core.broker.cgroups import own_dir as own_dir
    from blut_core.broker.cgroups import own_memory_cgroup as own_memory_cgroup
    from blut_core.broker.cgroups import procs as procs
    from blut_core.broker.cgroups import read_int as read_int
    from blut_core.broker.cgroups import read_keyed as read_keyed
    from blut_core.broker.cgroups import read_text as read_text
    from blut_core.broker.ledger import process_start as process_start
    from blut_core.broker.machine import probe as probe
    from blut_core.broker.resolve import Estimator as Estimator
    from blut_core.broker.select import probe_all as probe_all
    from blut_core.broker.select import select_containment as select_containment

_WHERE = {
    "probe": "broker.machine", "process_start": "broker.ledger",
    "admit": "broker.admission",
    "Estimator": "broker.resolve",
    "probe_all": "broker.select", "select_containment": "broker.select",
    "own_dir": "broker.cgroups", "own_memory_cgroup": "broker.cgroups", "procs": "broker.cgroups",
    "read_int": "broker.cgroups", "read_keyed": "broker.cgroups", "read_text": "broker.cgroups",
}

__getattr__, __all__ = exports(__name__, _WHERE)
