"""What a remote launcher (Slurm, Ray) can give: the broker admits its stages against this
instead of against this box. Only a remote run needs it, so a local one never builds these
records.
"""

from __future__ import annotations

import attrs

from blut_core.model.reprs import record_repr


@attrs.frozen(kw_only=True)
class NodeCapacity:
    """One node (or pool) a remote launcher can place jobs on."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str
    memory_bytes: int
    cpus: float


@attrs.frozen(kw_only=True)
class Capacity:
    """What a remote launcher can give: where admission looks instead of this box.

    ``max_job_memory`` is the largest job it accepts (a stage above it is refused before it
    is submitted), ``max_jobs`` how many of a run's jobs may be queued or running at once.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    nodes: tuple[NodeCapacity, ...]
    max_job_memory: int
    max_job_cpus: float
    max_jobs: int

    @property
    def memory_bytes(self) -> int:
        return sum(n.memory_bytes for n in self.nodes)
