"""A task's ``num_cpus`` and ``memory=`` checked before they reach Ray.

What Ray 2.60 does with the values (verified on the test cluster, see
``verify_ray_behaviour.py``), and so what is refused here:

- Ray counts resources in fixed point, 1/10000 of a unit. ``num_cpus=0.00001`` is refused
  by Ray, but ``1.00001`` is silently cut to ``1.0``: a quantity must be a multiple of 0.0001.
- ``memory=`` is bytes in the same fixed point, in a signed 64-bit integer: above
  (2**63 - 1) / 10000 bytes (about 838 TiB) it overflows, and ``memory=10**15`` or ``2**63``
  were *scheduled and ran* on a 24 GiB node. Such a request is refused.
- ``num_cpus=0`` and ``memory=0`` are accepted by Ray and book nothing: any number of such
  tasks run at once. A blut stage always books something, so zero is refused.
- Fractional CPUs (``0.5``, ``1.5``) are fine to Ray; a float of bytes (``memory=1.5``) is
  accepted too, but memory here is whole bytes. Negative values Ray refuses itself.
- A request no node can hold (more CPUs or memory than the largest node has) is not an
  error to Ray: the task stays pending for ever. :func:`infeasible_reason` tells it first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

#: Ray's fixed-point scale for resource quantities
RESOURCE_UNIT = 10_000
#: the largest ``memory=`` (bytes) Ray can hold without overflowing
MAX_MEMORY = (2**63 - 1) // RESOURCE_UNIT


class SizeError(ValueError):
    """A task size Ray would reject, misread or never schedule; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


def ray_num_cpus(cpus: float) -> float:
    """``num_cpus`` for a stage that needs ``cpus`` CPUs: positive, a multiple of 0.0001."""
    if isinstance(cpus, bool) or not isinstance(cpus, int | float):
        raise SizeError("num_cpus", f"must be a number, not {type(cpus).__name__}")
    if not math.isfinite(cpus) or cpus <= 0:
        raise SizeError("num_cpus", f"must be more than 0 (0 books no CPU at all; got {cpus!r})")
    units = cpus * RESOURCE_UNIT
    if abs(units - round(units)) > 1e-6 * max(1.0, units):
        raise SizeError("num_cpus", f"must be a multiple of 0.0001, Ray's resource unit (got {cpus!r})")
    return round(units) / RESOURCE_UNIT


def ray_memory(cap_bytes: int) -> int:
    """``memory=`` (bytes) for a stage capped at ``cap_bytes``: a positive whole number Ray can hold."""
    if isinstance(cap_bytes, bool) or not isinstance(cap_bytes, int):
        raise SizeError("memory", f"must be a whole number of bytes, not {type(cap_bytes).__name__}")
    if cap_bytes <= 0:
        raise SizeError("memory", f"must be more than 0 bytes (0 books no memory at all; got {cap_bytes})")
    if cap_bytes > MAX_MEMORY:
        raise SizeError("memory",
                        f"{cap_bytes} bytes overflows Ray's resource counter (at most {MAX_MEMORY})")
    return cap_bytes


@attrs.frozen
class TaskSize:
    """What a task asks Ray for: CPUs, and memory in bytes (``None``: no memory booked)."""

    num_cpus: float
    memory: int | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``remote_function.options(...)``."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.memory is not None:
            opts["memory"] = self.memory
        return opts


def task_size(cpus: float, memory_cap: int | None) -> TaskSize:
    """The checked size of a task for a stage of ``cpus`` CPUs capped at ``memory_cap`` bytes."""
    return TaskSize(ray_num_cpus(cpus), None if memory_cap is None else ray_memory(memory_cap))


def infeasible_reason(size: TaskSize, nodes: Iterable[Mapping[str, Any]]) -> str | None:
    """Why no node can ever run a task of ``size``, or ``None`` when one can.

    ``nodes`` are the totals of the cluster's live nodes, as in ``ray.nodes()`` entries'
    ``"Resources"`` (``{"CPU": 2.0, "memory": 8.5e9, ...}``), or those entries themselves.
    """
    best_cpu = best_mem = 0.0
    for node in nodes:
        if node.get("Alive") is False:
            continue
        resources = node.get("Resources", node)
        cpu = float(resources.get("CPU", 0.0))
        mem = float(resources.get("memory", 0.0))
        if cpu >= size.num_cpus and (size.memory is None or mem >= size.memory):
            return None
        best_cpu, best_mem = max(best_cpu, cpu), max(best_mem, mem)
    want = f"{size.num_cpus:g} CPU" + ("" if size.memory is None else f" and {size.memory} bytes of memory")
    return f"no live node has {want} (the largest have {best_cpu:g} CPU, {best_mem:.0f} bytes): " \
           "Ray would leave the task pending for ever"
